"""The Classifier: loading, batching, resizing, errors."""

import numpy as np
import pytest
import torch

from ml.checkpoint import new_checkpoint, save_checkpoint
from ml.errors import CheckpointError, InvalidImage
from ml.models import build_model
from ml.predict import Classifier, resolve_weights
from ml.recipe import TrainConfig
from tests.ml.conftest import make_image_set

CLASSES = ["angry", "happy", "sad"]


@pytest.fixture
def checkpoint_file(tmp_path):
    """An untrained but complete checkpoint (predictions are arbitrary, shapes are real)."""
    torch.manual_seed(0)
    config = TrainConfig(arch="edu-vgg-s", input_size=32)
    model = build_model(config.arch, len(CLASSES), config.input_size).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, new_checkpoint(model, CLASSES, config))
    return path


def test_predict_proba_is_one_forward_per_call(checkpoint_file):
    classifier = Classifier.load(checkpoint_file, device="cpu")
    assert classifier.classes == CLASSES and classifier.input_size == 32
    assert classifier.state_mapping == {"angry": "Angry", "happy": "Engaged", "sad": "Bored"}
    calls = []
    classifier.model.register_forward_hook(lambda *_: calls.append(1))
    faces = make_image_set(n_per_class=5, size=32).images
    p = classifier.predict_proba(faces)
    assert len(calls) == 1
    assert p.shape == (15, 3) and p.dtype == np.float32
    assert np.allclose(p.sum(1), 1, atol=1e-3)
    assert classifier.predict(faces[:2]) == [CLASSES[i] for i in p[:2].argmax(1)]


def test_mirror_averaging_averages_each_face_with_its_mirror_image(checkpoint_file):
    checkpoint = torch.load(checkpoint_file, weights_only=True)
    mirrored = Classifier(checkpoint, device="cpu", precision="fp32", mirror_average=True)
    plain = Classifier(checkpoint, device="cpu", precision="fp32")
    faces = np.random.default_rng(0).integers(0, 256, (6, 32, 32), dtype=np.uint8)
    expected = (plain.predict_proba(faces) + plain.predict_proba(faces[:, :, ::-1])) / 2
    assert np.allclose(mirrored.predict_proba(faces), expected, atol=1e-6)
    # So a face and its mirror image get the same answer, which the plain model does not give.
    flipped = np.ascontiguousarray(faces[:, :, ::-1])
    assert np.allclose(mirrored.predict_proba(flipped), mirrored.predict_proba(faces), atol=1e-6)
    assert not np.allclose(plain.predict_proba(flipped), plain.predict_proba(faces), atol=1e-6)


def test_faces_of_another_size_are_resized(checkpoint_file):
    classifier = Classifier.load(checkpoint_file, device="cpu")
    faces = make_image_set(n_per_class=2, size=64).images
    assert classifier.predict_proba(faces).shape == (6, 3)
    assert classifier.predict_proba(faces[0]).shape == (1, 3)  # a single (H, W) face
    assert classifier.predict_proba(np.zeros((0, 32, 32), np.uint8)).shape == (0, 3)


def test_bad_faces_and_weights_raise(checkpoint_file, tmp_path):
    classifier = Classifier.load(checkpoint_file, device="cpu")
    with pytest.raises(InvalidImage, match="uint8"):
        classifier.predict_proba(np.zeros((2, 32, 32), np.float32))
    with pytest.raises(InvalidImage, match="grayscale"):
        classifier.predict_proba(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(CheckpointError, match="does not exist"):
        Classifier.load(tmp_path / "missing.pt")
    assert resolve_weights("x.pt").name == "x.pt"
