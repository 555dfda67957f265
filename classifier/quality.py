"""Warnings from a model version's own validation scores, shown wherever it can be promoted.

Four 2-epoch models that answered "angry" for every face (validation accuracy 0.143 on seven
classes) were once listed like any other and one was promoted: every classroom photo then got
the same state. These checks need only the stored metrics, so the list page costs no query.
"""

from dataclasses import dataclass

# A model that puts this share of its predictions on one class has learnt a constant; 95%
# rather than 100% so that a model answering "angry" for all but a handful is caught too.
ONE_CLASS_SHARE = 0.95
# Accuracy at most this far above chance (always answering the most frequent class of the
# validation set) is no better than guessing: 5 points, the noise of a few hundred images.
CHANCE_MARGIN = 0.05


@dataclass(frozen=True)
class QualityFlag:
    code: str  # "one_class" or "near_chance"
    label: str  # a few words for lists
    message: str  # the measured reason


def chance_level(metrics: dict, classes: list[str]) -> tuple[float, str]:
    """The accuracy of always answering the most frequent class, and how it was found.

    From the validation set's class sizes when the confusion matrix is stored, else one over
    the number of classes.
    """
    matrix = metrics.get("confusion_matrix")
    if matrix:
        support = [sum(row) for row in matrix]
        total = sum(support)
        if total:
            best = max(range(len(support)), key=support.__getitem__)
            name = (metrics.get("classes") or classes)[best]
            return support[best] / total, f"always answering “{name}”"
    return 1 / max(len(classes), 1), f"a guess among {len(classes)} classes"


def quality_flags(metrics: dict, classes: list[str]) -> list[QualityFlag]:
    """What is wrong with a model, judged from its validation metrics; [] when nothing is."""
    flags = []
    metrics = metrics or {}
    matrix = metrics.get("confusion_matrix")
    if matrix:
        predicted = [sum(column) for column in zip(*matrix, strict=True)]
        total = sum(predicted)
        if total:
            top = max(range(len(predicted)), key=predicted.__getitem__)
            share = predicted[top] / total
            if share >= ONE_CLASS_SHARE:
                name = (metrics.get("classes") or classes)[top]
                flags.append(
                    QualityFlag(
                        "one_class",
                        "Predicts one class",
                        f"Predicts one class: “{name}” for {share:.0%} of its validation images.",
                    )
                )
    accuracy = metrics.get("accuracy", metrics.get("val_accuracy"))
    if accuracy is not None:
        chance, how = chance_level(metrics, classes)
        if accuracy <= chance + CHANCE_MARGIN:
            flags.append(
                QualityFlag(
                    "near_chance",
                    "Near chance",
                    f"Scores near chance: accuracy {accuracy:.3f}, where {how} scores "
                    f"{chance:.3f}.",
                )
            )
    return flags
