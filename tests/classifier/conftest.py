"""Helpers of the admin-workflow tests: generated dataset zips, users, an imported version."""

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

FAST_TRAIN = {"arch": "edu-vgg-s", "epochs": 1, "batch_size": 16, "lr": 0.05, "patience": 0}


def face_like(label: int, index: int, size: int = 48) -> np.ndarray:
    """A 48x48 grayscale image whose class shows in where the bright band lies, plus noise."""
    rng = np.random.default_rng(label * 1000 + index)
    image = rng.integers(0, 60, (size, size)).astype(np.uint8)
    rows = slice(0, size // 2) if label == 0 else slice(size // 2, size)
    # Older people's images (see `age` in dataset_zip_bytes) get a fainter band: harder to
    # classify, so an audit has a real gap to find.
    boost = 160 if index % 8 < 5 else 25
    image[rows] = np.clip(image[rows].astype(int) + boost, 0, 255).astype(np.uint8)
    return image


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def dataset_zip_bytes(
    classes=("happy", "sad"),
    per_class: int = 24,
    attributes: bool = True,
    extra: dict | None = None,
) -> bytes:
    """A zip in the seed's layout, `data/<class>/<n>.png`, with an attributes.csv.

    Gender alternates within a class; `extra` adds raw members (name -> bytes).
    """
    buffer = io.BytesIO()
    rows = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for label, name in enumerate(classes):
            for i in range(per_class):
                file = f"{name}_{i}.png"
                archive.writestr(f"data/{name}/{file}", png_bytes(face_like(label, i)))
                rows.append({"file": file, "class": name, "gender": "female" if i % 2 else "male",
                             "age": str(20 + 7 * (i % 8))})  # fmt: skip
        if attributes:
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=["file", "class", "gender", "age"])
            writer.writeheader()
            writer.writerows(rows)
            archive.writestr("data/attributes.csv", text.getvalue())
        for member, content in (extra or {}).items():
            archive.writestr(member, content)
    return buffer.getvalue()


def upload(content: bytes, name: str = "faces.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/zip")


def write_dataset_folder(root: Path, classes=("happy", "sad"), per_class: int = 12) -> Path:
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(png_bytes(face_like(label, i)))
    return root


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EDUMOOD_DEVICE = "cpu"
    return settings.MEDIA_ROOT


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_user(
        "boss", password="a-Long-pass-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def teacher(django_user_model):
    return django_user_model.objects.create_user("teacher", password="a-Long-pass-123")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def teacher_client(client, teacher):
    client.force_login(teacher)
    return client


def run_queued(job):
    """Run a job in this process, as the worker would (its task was queued on commit)."""
    from classifier.jobs import run_job

    run_job(job.pk)
    job.refresh_from_db()
    return job


@pytest.fixture
def imported_version(db, media, admin_user):
    """A dataset version imported from a generated zip with gender and age attributes."""
    from classifier.jobs import start_import
    from classifier.models import DatasetVersion

    _, job = start_import("faces", user=admin_user, upload=upload(dataset_zip_bytes()))
    job = run_queued(job)
    assert job.status == "succeeded", job.error
    return DatasetVersion.objects.get(pk=job.result["dataset_version"])


@pytest.fixture
def trained_version(imported_version, admin_user):
    """A model version trained for one epoch on the imported version."""
    from classifier.choices import JobKind
    from classifier.jobs import create_job
    from classifier.models import ModelVersion

    job = create_job(
        JobKind.TRAIN, {**FAST_TRAIN, "dataset_version": imported_version.pk}, user=admin_user
    )
    job = run_queued(job)
    assert job.status == "succeeded", job.error
    return ModelVersion.objects.get(pk=job.result["model_version"])
