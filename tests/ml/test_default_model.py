"""The shipped default model scores what its model card says on FER2013 PublicTest."""

import re
from pathlib import Path

import pytest

from ml.data import load_images
from ml.evaluate import evaluate_classifier
from ml.predict import DEFAULT_WEIGHTS, Classifier

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
    metrics = evaluate_classifier(Classifier.load("default", device="cpu"), val)
    assert metrics["accuracy"] >= card_val_accuracy() - 0.005
