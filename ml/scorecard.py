"""One scorecard per model: how it was measured, on which data, and what is wrong with it.

Pages, the API, teacher banners and reports all read a model's numbers from its scorecard, so
the same figure appears everywhere, always with the data it was measured on. The scorecard is
built here from a confusion matrix (rows true classes, columns predictions), the model's class
names and their mapping to classroom states; accuracy, macro-F1 and recall are derived from
that one matrix, for the model's classes and for the four states. Torch-free: the web process
and migrations build and read scorecards.

Flags say why a number must not be read as a quality claim. Two kinds:
- "broken" (one class, near chance): the model is useless; promoting it needs a confirmation.
- "unmeasured" (too few test faces of a class, a split of its own training upload, no
  per-class results): the number may be fine, but it was not measured on a reference set, so
  teachers never see it as a headline accuracy.

Four 2-epoch models that answered "angry" for every face (validation accuracy 0.143 on seven
classes) were once listed like any other and one was promoted: every classroom photo then got
the same state. And a one-class model scored on 24 faces of its own upload read "96.4 %" to
teachers. These checks need only the stored matrix.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

# A model that puts this share of its predictions on one class has learnt a constant; 95%
# rather than 100% so that a model answering "angry" for all but a handful is caught too.
ONE_CLASS_SHARE = 0.95
# Accuracy at most this far above chance (always answering the most frequent class of the
# test set) is no better than guessing: 5 points, the noise of a few hundred images.
CHANCE_MARGIN = 0.05
# Below this many test faces of a class its recall is known to about +-14 points (95 %
# binomial half-width at recall 0.5), too coarse to rank models. FER2013 PublicTest has 56
# disgust faces, its smallest class.
MIN_FACES_PER_CLASS = 50

# The shipped model's evaluation on FER2013 PublicTest, the reference its model card reports
# (written by the command it names; its scorecard is built from it).
DEFAULT_EVALUATION = Path(__file__).resolve().parent / "weights" / "default.evaluation.json"

BROKEN = "broken"
UNMEASURED = "unmeasured"
NOT_REFERENCE = "not measured on a reference set"


@dataclass(frozen=True)
class Flag:
    code: str  # one_class, near_chance, few_test_faces, own_split, no_matrix
    kind: str  # BROKEN or UNMEASURED
    label: str  # a few words for lists
    message: str  # the measured reason, in a sentence


@dataclass(frozen=True)
class MeasuredOn:
    """The data a scorecard was measured on."""

    name: str  # e.g. "FER2013 PublicTest (fer2013/val)", "validation split of faces v1"
    size: int  # faces
    # False for a split of the model's own training upload: not a reference set.
    reference: bool
    dataset_version: int | None = None


@dataclass(frozen=True)
class Scorecard:
    measured_on: MeasuredOn | None
    source: str  # where the measurement came from, e.g. "evaluation job #12"
    classes: tuple[str, ...]
    accuracy: float | None
    macro_f1: float | None
    state_accuracy: float | None
    state_macro_f1: float | None
    recall: dict[str, float] = field(default_factory=dict)
    support: dict[str, int] = field(default_factory=dict)
    calibration_faces: int | None = None  # labelled faces its share correction was measured on
    confusion: list[list[int]] | None = None  # rows true classes, columns predictions
    flags: tuple[Flag, ...] = ()

    @property
    def broken(self) -> tuple[Flag, ...]:
        """The flags that make promoting this model a likely mistake."""
        return tuple(f for f in self.flags if f.kind == BROKEN)

    @property
    def headline(self) -> float | None:
        """The accuracy that may be shown as a quality claim: None while any flag stands."""
        return None if self.flags else self.accuracy

    def comparable_with(self, other: "Scorecard") -> bool:
        """Whether two scorecards' numbers rank the two models: both measured on the same
        reference set, neither flagged."""
        return (
            not self.flags
            and not other.flags
            and self.measured_on is not None
            and self.measured_on == other.measured_on
        )

    def to_json(self) -> dict:
        data = asdict(self)
        data["classes"] = list(self.classes)
        data["flags"] = [asdict(f) for f in self.flags]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Scorecard":
        measured = data.get("measured_on")
        return cls(
            measured_on=MeasuredOn(**measured) if measured else None,
            source=data.get("source", ""),
            classes=tuple(data.get("classes") or ()),
            accuracy=data.get("accuracy"),
            macro_f1=data.get("macro_f1"),
            state_accuracy=data.get("state_accuracy"),
            state_macro_f1=data.get("state_macro_f1"),
            recall=dict(data.get("recall") or {}),
            support=dict(data.get("support") or {}),
            calibration_faces=data.get("calibration_faces"),
            confusion=data.get("confusion"),
            flags=tuple(Flag(**f) for f in data.get("flags") or ()),
        )


def build_scorecard(
    metrics: dict,
    classes: Sequence[str],
    state_mapping: dict[str, str],
    *,
    measured_on: MeasuredOn | None,
    source: str,
    calibration: dict | None = None,
) -> Scorecard:
    """The scorecard of a model from its metrics (ml.evaluate.classification_metrics, or a
    checkpoint's training metrics) on the data `measured_on` names.

    Everything is derived from the confusion matrix when the metrics hold one; without it only
    the stored accuracy is known, and the card is flagged as having no per-class results.
    """
    metrics = metrics or {}
    names = [str(c) for c in (metrics.get("classes") or classes)]
    matrix = metrics.get("confusion_matrix")
    calibration_faces = (
        sum(map(sum, calibration["confusion"])) if calibration and "confusion" in calibration
        else None
    )  # fmt: skip
    if not matrix:
        accuracy = metrics.get("accuracy", metrics.get("val_accuracy"))
        card = Scorecard(
            measured_on, source, tuple(names), accuracy, metrics.get("macro_f1"), None, None,
            calibration_faces=calibration_faces,
        )  # fmt: skip
        return _with_flags(card, matrix=None)
    accuracy, macro_f1, recall, support = _scores(matrix)
    state_names, state_matrix = _state_matrix(matrix, names, state_mapping)
    state_accuracy, state_macro_f1, _, _ = _scores(state_matrix)
    card = Scorecard(
        measured_on=measured_on,
        source=source,
        classes=tuple(names),
        accuracy=round(accuracy, 4),
        macro_f1=round(macro_f1, 4),
        state_accuracy=round(state_accuracy, 4),
        state_macro_f1=round(state_macro_f1, 4),
        recall={n: round(r, 4) for n, r in zip(names, recall, strict=True)},
        support=dict(zip(names, support, strict=True)),
        calibration_faces=calibration_faces,
        confusion=[[int(v) for v in row] for row in matrix],
    )
    return _with_flags(card, matrix=matrix)


def _scores(matrix) -> tuple[float, float, list[float], list[int]]:
    """Accuracy, macro-F1 (as scikit-learn with zero_division=0), per-class recall, support."""
    n = len(matrix)
    support = [int(sum(row)) for row in matrix]
    predicted = [sum(row[j] for row in matrix) for j in range(n)]
    total = sum(support)
    recall, f1 = [], []
    for i in range(n):
        hit = matrix[i][i]
        r = hit / support[i] if support[i] else 0.0
        p = hit / predicted[i] if predicted[i] else 0.0
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    accuracy = sum(matrix[i][i] for i in range(n)) / total if total else 0.0
    return accuracy, sum(f1) / n if n else 0.0, recall, support


def _state_matrix(matrix, names, state_mapping) -> tuple[list[str], list[list[int]]]:
    """The class confusion matrix summed into classroom states (classes without a mapping
    are their own state)."""
    states = list(dict.fromkeys(state_mapping.get(n, n) for n in names))
    index = {n: states.index(state_mapping.get(n, n)) for n in names}
    merged = [[0] * len(states) for _ in states]
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            merged[index[names[i]]][index[names[j]]] += int(count)
    return states, merged


def _with_flags(card: Scorecard, matrix) -> Scorecard:
    flags = []
    names = card.classes
    if matrix:
        predicted = [sum(row[j] for row in matrix) for j in range(len(matrix))]
        total = sum(predicted)
        if total:
            top = max(range(len(predicted)), key=predicted.__getitem__)
            share = predicted[top] / total
            if share >= ONE_CLASS_SHARE:
                flags.append(Flag(
                    "one_class", BROKEN, "Predicts one class",
                    f"Predicts one class: “{names[top]}” for {share:.0%} of its test images.",
                ))  # fmt: skip
    if card.accuracy is not None:
        chance, how = _chance_level(card.support, names)
        if card.accuracy <= chance + CHANCE_MARGIN:
            flags.append(Flag(
                "near_chance", BROKEN, "Near chance",
                f"Scores near chance: accuracy {card.accuracy:.3f}, where {how} scores "
                f"{chance:.3f}.",
            ))  # fmt: skip
    if card.measured_on is not None and not card.measured_on.reference:
        flags.append(Flag(
            "own_split", UNMEASURED, "Own split",
            f"Measured on {card.measured_on.name} ({card.measured_on.size} faces), a split of "
            f"its own training upload: {NOT_REFERENCE}.",
        ))  # fmt: skip
    few = {n: s for n, s in card.support.items() if s < MIN_FACES_PER_CLASS}
    if few:
        listed = ", ".join(f"{n} ({s})" for n, s in few.items())
        flags.append(Flag(
            "few_test_faces", UNMEASURED, "Few test faces",
            f"Measured on fewer than {MIN_FACES_PER_CLASS} test faces of {listed}: "
            f"{NOT_REFERENCE}.",
        ))  # fmt: skip
    if matrix is None:
        flags.append(Flag(
            "no_matrix", UNMEASURED, "No per-class results",
            f"No per-class results were recorded: {NOT_REFERENCE}. Evaluate it on a dataset "
            "version it was not trained on.",
        ))  # fmt: skip
    return Scorecard(**{**card.__dict__, "flags": tuple(flags)})


def _chance_level(support: dict[str, int], classes: Sequence[str]) -> tuple[float, str]:
    """The accuracy of always answering the most frequent class, and how it was found: from
    the test set's class sizes when known, else one over the number of classes."""
    total = sum(support.values())
    if total:
        name = max(support, key=support.__getitem__)
        return support[name] / total, f"always answering “{name}”"
    return 1 / max(len(classes), 1), f"a guess among {len(classes)} classes"


def shipped_scorecard(
    classes: Sequence[str], state_mapping: dict[str, str], calibration: dict | None
) -> Scorecard:
    """The shipped model's scorecard, from its stored evaluation (DEFAULT_EVALUATION)."""
    stored = json.loads(DEFAULT_EVALUATION.read_text())
    return build_scorecard(
        stored["metrics"], classes, state_mapping,
        measured_on=MeasuredOn(**stored["measured_on"]), source="the shipped model card",
        calibration=calibration,
    )  # fmt: skip
