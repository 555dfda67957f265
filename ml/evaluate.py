"""Classification metrics (scikit-learn) and batch prediction over an ImageSet."""

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from ml.data import ImageSet
from ml.errors import DataError
from ml.labels import states_of


def classification_metrics(y_true, y_pred, classes) -> dict:
    """Accuracy, macro/micro precision, recall, F1, per-class report and confusion matrices.

    Labels are indices into `classes` or the class names themselves. Rows of the confusion
    matrix are true classes, columns predictions; the normalised one divides each row by its
    support (a row of zeros for a class with no samples).
    """
    classes = [str(c) for c in classes]
    y_true, y_pred = _as_index(y_true, classes), _as_index(y_pred, classes)
    if len(y_true) != len(y_pred):
        raise DataError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    labels = list(range(len(classes)))
    n = len(y_true)
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    macro = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    micro = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="micro", zero_division=0
    )
    cm = confusion_matrix(y_true, y_pred, labels=labels) if n else np.zeros((len(labels),) * 2, int)
    support = cm.sum(1, keepdims=True)
    normalised = np.divide(cm, support, out=np.zeros(cm.shape), where=support > 0)
    return {
        "accuracy": float((y_true == y_pred).mean()) if n else 0.0,
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "macro_f1": float(macro[2]),
        "micro_precision": float(micro[0]),
        "micro_recall": float(micro[1]),
        "micro_f1": float(micro[2]),
        "per_class": {
            c: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": cm.astype(int).tolist(),
        "confusion_matrix_normalised": normalised.round(6).tolist(),
        "classes": classes,
        "n": int(n),
    }


def _as_index(labels, classes: list[str]) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError("label index outside the class list")
        return labels.astype(np.int64)
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(v) for v in labels} - lookup.keys())
    if unknown:
        raise DataError(f"labels {unknown} are not among the classes {classes}")
    return np.asarray([lookup[str(v)] for v in labels], dtype=np.int64)


def predict_probabilities(classifier, data: ImageSet, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (N, C) of every image of `data`, C = the classifier's classes.

    Goes through `Classifier.predict_proba`, so scoring applies exactly the preprocessing of
    serving (normalisation and input blur stored in the checkpoint).
    """
    out = [
        classifier.predict_proba(data.images[i : i + batch_size])
        for i in range(0, len(data), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, len(classifier.classes)), np.float32)


def predict_labels(classifier, data: ImageSet, batch_size: int = 512) -> np.ndarray:
    """Predicted class indices (into the classifier's classes) for every image of `data`."""
    return predict_probabilities(classifier, data, batch_size).argmax(1)


def true_labels_for(data: ImageSet, classes: list[str]) -> np.ndarray:
    """The data's labels as indices into a model's `classes` (DataError when a class is unknown)."""
    missing = [c for c in data.classes if c not in classes]
    if missing:
        raise DataError(f"data classes {missing} are not classes of the model ({classes})")
    remap = np.asarray([classes.index(c) for c in data.classes], dtype=np.int64)
    return remap[data.labels]


def true_states_for(classifier, data: ImageSet) -> list[str]:
    """The classroom state of every image of `data`.

    Data labelled with the model's classes (or a subset) maps through its state mapping; data
    labelled with the states the model maps to is taken as it is.
    """
    mapping = classifier.state_mapping
    if all(c in classifier.classes for c in data.classes):
        y_true = true_labels_for(data, classifier.classes)
        return [mapping[classifier.classes[i]] for i in y_true]
    if all(c in set(mapping.values()) for c in data.classes):
        return [data.classes[i] for i in data.labels]
    raise DataError(
        f"data classes {data.classes} match neither the model's classes {classifier.classes} "
        "nor its classroom states"
    )


def evaluate_classifier(classifier, data: ImageSet, map_states: bool = False) -> dict:
    """Score a Classifier on a dataset.

    Data whose classes are the model's classes (or a subset) is scored per class, and with
    `map_states` on classroom states too (top level = states, per class under "unmapped").
    Data whose classes are classroom states the model maps to is scored on states.
    """
    predictions = predict_labels(classifier, data)
    mapping = classifier.state_mapping
    unmapped = None
    if all(c in classifier.classes for c in data.classes):
        y_true = true_labels_for(data, classifier.classes)
        unmapped = classification_metrics(y_true, predictions, classifier.classes)
        if not map_states:
            return unmapped
    true_states = true_states_for(classifier, data)
    pred_states = [mapping[classifier.classes[i]] for i in predictions]
    metrics = classification_metrics(true_states, pred_states, states_of(mapping))
    metrics["mapped_to_states"] = True
    if unmapped is not None:
        metrics["unmapped"] = unmapped
    return metrics
