"""Metrics against hand-computed values, state mapping, batch prediction."""

import numpy as np
import pytest

from ml.errors import DataError
from ml.evaluate import classification_metrics, evaluate_classifier, true_labels_for
from ml.labels import FER_CLASSES, STATES, default_state_mapping, to_state
from tests.ml.conftest import make_image_set


def test_metrics_match_a_hand_computed_case():
    # true: a a a b b c ; pred: a a b b c c
    m = classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # precision a=2/2, b=1/2, c=1/2 ; recall a=2/3, b=1/2, c=1/1
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert m["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    f1 = [0.8, 0.5, 2 * 0.5 / 1.5]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["micro_f1"] == pytest.approx(4 / 6)  # single-label: micro = accuracy
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["confusion_matrix_normalised"][0] == pytest.approx([2 / 3, 1 / 3, 0])
    assert m["n"] == 6 and m["classes"] == ["a", "b", "c"]


def test_metrics_accept_names_and_keep_absent_classes():
    m = classification_metrics(["x", "x"], ["x", "y"], ["x", "y", "z"])
    assert m["per_class"]["z"]["support"] == 0
    assert m["confusion_matrix_normalised"][2] == [0.0, 0.0, 0.0]
    with pytest.raises(DataError):
        classification_metrics(["q"], ["x"], ["x", "y"])


def test_state_mapping():
    mapping = default_state_mapping(FER_CLASSES)
    assert {to_state(c, mapping) for c in FER_CLASSES} == set(STATES)
    assert mapping["surprise"] == "Engaged" and mapping["fear"] == "Bored"
    assert default_state_mapping(["bored", "Engaged"]) == {"bored": "Bored", "Engaged": "Engaged"}


class FixedClassifier:
    """A stand-in with the Classifier interface whose predictions are known in advance."""

    def __init__(self, classes, predictions):
        self.classes = list(classes)
        self.state_mapping = default_state_mapping(classes)
        self._predictions = np.asarray(predictions)

    def predict_proba(self, faces):
        out = np.zeros((len(faces), len(self.classes)), np.float32)
        out[np.arange(len(faces)), self._predictions[: len(faces)]] = 1
        return out


def test_evaluate_classifier_scores_states_and_subsets():
    data = make_image_set(("happy", "sad"), n_per_class=2)
    # model classes: angry happy sad surprise ; predictions: happy surprise sad angry
    model = FixedClassifier(["angry", "happy", "sad", "surprise"], [1, 3, 2, 0])
    assert true_labels_for(data, model.classes).tolist() == [1, 1, 2, 2]
    per_class = evaluate_classifier(model, data)
    assert per_class["accuracy"] == 0.5
    states = evaluate_classifier(model, data, map_states=True)
    assert states["accuracy"] == 0.75  # surprise counts as Engaged like happy
    assert states["unmapped"]["accuracy"] == 0.5
    state_data = make_image_set(("Engaged", "Bored"), n_per_class=2)
    scored = evaluate_classifier(model, state_data)
    assert scored["mapped_to_states"] and scored["accuracy"] == 0.75
    with pytest.raises(DataError, match="match neither"):
        evaluate_classifier(model, make_image_set(("cat", "dog"), n_per_class=2))
