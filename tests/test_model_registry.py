"""Model versions: registering checkpoints, one active version, the per-process model cache."""

import numpy as np
import pytest

from classifier.models import ModelVersion
from classifier.services import (
    active_model_version,
    load_classifier,
    promote,
    register_model_version,
)


@pytest.mark.django_db
def test_registering_the_same_checkpoint_twice_gives_the_same_version(model_version):
    again = register_model_version(model_version.checkpoint.path, name="copy")
    assert again.pk == model_version.pk
    assert model_version.classes[0] == "angry" and model_version.state_mapping["happy"] == "Engaged"


@pytest.mark.django_db
def test_promoting_keeps_exactly_one_active_version(model_version, tmp_path, django_user_model):
    from ml.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(model_version.checkpoint.path)
    checkpoint["metrics"] = {"accuracy": 0.5}
    save_checkpoint(tmp_path / "other.pt", checkpoint)
    other = register_model_version(tmp_path / "other.pt", name="other")
    admin = django_user_model.objects.create_user("boss", is_staff=True)
    promote(other, user=admin)
    assert active_model_version() == other
    assert list(ModelVersion.objects.filter(is_active=True)) == [other]
    assert other.promoted_by == admin and other.promoted_at is not None


@pytest.mark.django_db
def test_the_classifier_is_loaded_once_per_process(model_version):
    first = load_classifier(model_version)
    assert load_classifier(model_version) is first
    faces = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    probabilities = first.predict_proba(faces)
    assert probabilities.shape == (3, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


@pytest.mark.django_db
def test_a_worker_keeps_one_loaded_model_not_every_version_it_saw(model_version, tmp_path):
    from classifier import services
    from ml.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(model_version.checkpoint.path)
    checkpoint["metrics"] = {"accuracy": 0.6}
    save_checkpoint(tmp_path / "newer.pt", checkpoint)
    newer = register_model_version(tmp_path / "newer.pt", name="newer")
    load_classifier(model_version)
    load_classifier(newer)
    assert list(services._CLASSIFIERS) == [(newer.pk, newer.checkpoint_sha256)]


@pytest.mark.django_db
def test_an_ensemble_is_registered_and_shown_as_one(model_version, tmp_path, admin_client):
    from ml.checkpoint import combine_checkpoints, load_checkpoint, save_checkpoint

    single = load_checkpoint(model_version.checkpoint.path)
    members = [{**single, "metrics": {"val_accuracy": accuracy}} for accuracy in (0.61, 0.58)]
    save_checkpoint(tmp_path / "pair.pt", combine_checkpoints(members))
    pair = register_model_version(tmp_path / "pair.pt", name="pair")
    assert pair.metrics["models"] == 2 and pair.history == []  # not the first model's run
    page = admin_client.get(f"/models/{pair.pk}/").content.decode()
    assert "edu-vgg-s × 2 (an ensemble" in page
    assert "scored on its own validation data: 0.610 and 0.580." in page
