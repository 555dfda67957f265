"""The Classifier: loading, batching, resizing, errors."""

import numpy as np
import pytest
import torch

from ml.checkpoint import combine_checkpoints, new_checkpoint, save_checkpoint
from ml.data import load_images
from ml.errors import CheckpointError, InvalidImage
from ml.evaluate import evaluate_classifier
from ml.models import build_model
from ml.predict import Classifier, distillation_targets, resolve_weights
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
    classifier.models[0].register_forward_hook(lambda *_: calls.append(1))
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


def test_distillation_targets_blend_each_label_with_the_teachers_probabilities(checkpoint_file):
    teacher = Classifier.load(checkpoint_file, device="cpu")
    data = make_image_set(CLASSES, 4, size=32)
    probabilities = teacher.predict_proba(data.images)
    one_hot = np.eye(len(CLASSES))[data.labels]
    targets = distillation_targets(data, teacher, weight=0.7)
    assert targets.shape == (12, 3) and targets.dtype == np.float32
    np.testing.assert_allclose(targets, 0.3 * one_hot + 0.7 * probabilities, atol=1e-6)
    np.testing.assert_allclose(distillation_targets(data, teacher, 0.0), one_hot)
    with pytest.raises(CheckpointError, match="differ from the dataset's"):
        distillation_targets(make_image_set(("angry", "sad", "happy")), teacher, 0.5)


def _trained(seed: int):
    """A small model trained for two epochs on the pattern images (real, non-uniform outputs)."""
    from ml.train import train

    config = TrainConfig(
        arch="edu-vgg-s", epochs=2, batch_size=8, lr=0.01, scheduler="none", augment=False,
        input_size=32, precision="fp32", seed=seed,
    )  # fmt: skip
    return train(make_image_set(CLASSES, 16, size=32), None, config)


@pytest.fixture(scope="module")
def two_members():
    return _trained(0), _trained(1)


def test_an_ensemble_averages_its_members(two_members):
    combined = combine_checkpoints(list(two_members))
    assert len(combined["members"]) == 1 and combined["resume"] is None
    # Its metrics are the combination's (the first model's are among the members' own).
    assert combined["history"] == [] and combined["metrics"] == {
        "models": 2,
        "member_metrics": [c["metrics"] for c in two_members],
    }
    faces = make_image_set(CLASSES, 4, size=32, seed=5).images
    each = [Classifier(c, device="cpu", precision="fp32").predict_proba(faces) for c in two_members]
    ensemble = Classifier(combined, device="cpu", precision="fp32")
    assert len(ensemble.models) == 2 and ensemble.description == "edu-vgg-s x 2"
    assert Classifier(two_members[0], device="cpu").description == "edu-vgg-s"
    assert np.allclose(ensemble.predict_proba(faces), (each[0] + each[1]) / 2, atol=1e-5)


def test_only_finished_checkpoints_of_the_same_classes_combine(two_members):
    first, second = two_members
    with pytest.raises(CheckpointError, match="at least two"):
        combine_checkpoints([first])
    with pytest.raises(CheckpointError, match="differs from the first in classes"):
        combine_checkpoints([first, {**second, "classes": ["a", "b", "c"]}])
    with pytest.raises(CheckpointError, match="unfinished"):
        combine_checkpoints([first, {**second, "resume": {"model": {}}}])


def test_int8_serving_follows_the_float_model(two_members, tmp_path, make_image_folder):
    """`ml ensemble --calibrate` records ranges; the CPU then serves int8, close to float32."""
    from ml.__main__ import main

    paths = []
    for number, checkpoint in enumerate(two_members):
        paths.append(tmp_path / f"m{number}.pt")
        save_checkpoint(paths[-1], checkpoint)
    train_images = make_image_folder(classes=CLASSES, n_per_class=16, size=32)
    out = tmp_path / "ensemble.pt"
    val_images = make_image_folder(CLASSES, 8, 32, root=tmp_path / "val", seed=3)
    argv = ["ensemble", "--members", *paths, "--calibrate", train_images, "--val", val_images,
            "--out", out]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    served = Classifier.load(out, device="cpu")
    val = evaluate_classifier(served, load_images(val_images, 32))
    assert served.checkpoint["metrics"]["val_accuracy"] == val["accuracy"]  # as served: int8
    exact = Classifier(torch.load(out, weights_only=True), device="cpu", int8=False)
    assert served.int8 and not exact.int8 and len(served.models) == 2
    assert served.description == "edu-vgg-s x 2, int8"
    faces = make_image_set(CLASSES, 10, size=32, seed=7).images
    p_int8, p_float = served.predict_proba(faces), exact.predict_proba(faces)
    assert np.allclose(p_int8.sum(1), 1, atol=1e-4)
    assert np.abs(p_int8 - p_float).max() < 0.1
    assert (p_int8.argmax(1) == p_float.argmax(1)).mean() >= 0.9
    with pytest.raises(CheckpointError, match="activation ranges"):
        Classifier(two_members[0], device="cpu", int8=True)
