"""The shipped default model scores what its model card says on FER2013 PublicTest."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ml.data import load_images
from ml.evaluate import evaluate_classifier
from ml.predict import DEFAULT_CALIBRATION, DEFAULT_WEIGHTS, Classifier
from ml.quantify import Calibration, measure_calibration

CARD = Path(DEFAULT_WEIGHTS).with_name("MODEL_CARD.md")


def card_val_accuracy() -> float:
    """The 7-class val accuracy stated in the model card ("val_accuracy_7class: 0.xxxx")."""
    match = re.search(r"val_accuracy_7class:\s*([0-9.]+)", CARD.read_text(encoding="utf-8"))
    assert match, "MODEL_CARD.md must state val_accuracy_7class"
    return float(match.group(1))


def test_shipped_weights_are_small_and_complete():
    assert DEFAULT_WEIGHTS.stat().st_size < 20 * 1024 * 1024
    classifier = Classifier.load("default", device="cpu")
    assert classifier.classes == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert classifier.state_mapping["surprise"] == "Engaged"


def test_shipped_weights_match_the_card(data_dir):
    val = load_images(data_dir / "fer2013" / "val")
    if len(val) < 3000:
        pytest.skip("FER2013 val split incomplete")
    classifier = Classifier.load("default", device="cpu")
    metrics = evaluate_classifier(classifier, val)
    assert metrics["accuracy"] >= card_val_accuracy() - 0.005
    # The shipped calibration is this model's, measured on this val split.
    shipped = Calibration.from_json(json.loads(DEFAULT_CALIBRATION.read_text()))
    measured = measure_calibration(classifier, val)
    assert shipped.states == measured.states
    assert np.abs(np.asarray(shipped.confusion) - measured.confusion).sum() <= 10
