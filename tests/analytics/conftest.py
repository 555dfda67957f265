"""Teachers, classrooms and generated images for the analytics tests."""

import io
import zipfile
from datetime import date

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from analytics import services
from analytics.models import Classroom, Consent, FaceResult, Photo, Session
from ml.labels import STATES
from ml.quantify import Calibration


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def stored_files(root) -> list[str]:
    """Photo files under MEDIA_ROOT (model checkpoints excluded)."""
    base = root / "photos"
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def image_bytes(fmt: str = "JPEG", size=(96, 72), seed: int = 0, exif=None) -> bytes:
    """A small noisy photo-like image (no faces) in the given format."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def upload(name: str, data: bytes, content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def zip_bytes(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_user(username: str):
    return get_user_model().objects.create_user(username, password="pw-for-tests-1")


@pytest.fixture
def analyse(eager_celery, django_capture_on_commit_callbacks):
    """Upload files to a session and run what follows the commit: the files are renamed into
    place and their analysis tasks run (eagerly; without a model version the photos fail and
    keep their files)."""

    def run(session, *files):
        with django_capture_on_commit_callbacks(execute=True):
            outcome = services.upload_photos(session, list(files))
        for photo in outcome.photos:
            photo.refresh_from_db()
        return outcome.photos

    return run


@pytest.fixture
def api(teacher):
    """An API client signed in as the teacher."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(teacher)
    return client


@pytest.fixture
def calibrated(model_version):
    """The active test model with crisp, error-free measured error rates."""
    from classifier.services import set_calibration

    set_calibration(model_version, calibration(0))
    return model_version


@pytest.fixture
def teacher(db):
    return make_user("alice")


@pytest.fixture
def other_teacher(db):
    return make_user("bob")


def make_classroom(owner, *, consent: bool = True, **fields) -> Classroom:
    classroom = Classroom.objects.create(owner=owner, name=fields.pop("name", "7B"), **fields)
    if consent:
        Consent.objects.create(
            classroom=classroom,
            obtained_from="Parents of all 24 students",
            method="written",
            obtained_on=date(2024, 9, 1),
            recorded_by=owner,
        )
    return classroom


@pytest.fixture
def classroom(teacher):
    return make_classroom(teacher)


@pytest.fixture
def session(classroom):
    return Session.objects.create(classroom=classroom, title="Fractions")


def add_results(session, states: list[str], *, status="done", version=None) -> Photo:
    """A photo row with face results in the given states (no image file)."""
    photo = Photo.objects.create(
        session=session, status=status, width=200, height=100, model_version=version
    )
    FaceResult.objects.bulk_create(
        FaceResult(
            photo=photo, x=10 * i, y=5, w=20, h=20, score=0.9, label=state.lower(), state=state,
            probabilities={state.lower(): 0.7, "other": 0.3}, model_version=version,
        )
        for i, state in enumerate(states)
    )  # fmt: skip
    return photo


# A class read as each state by a face of the FER class that maps to it.
FER_OF = {"Angry": "angry", "Neutral": "neutral", "Engaged": "happy", "Bored": "sad"}


def calibration(bored_as_neutral: int = 0) -> dict:
    """Crisp error rates: every state read right, except `bored_as_neutral` of 100 Bored faces."""
    confusion = np.diag([100, 100, 100, 100 - bored_as_neutral])
    confusion[STATES.index("Bored"), STATES.index("Neutral")] = bored_as_neutral
    return Calibration(STATES, confusion, confusion.astype(float)).to_json()


def add_faces(session, version, states: list[str]) -> Photo:
    """A done photo whose faces were read by `version` as `states`, each with certainty."""
    photo = Photo.objects.create(session=session, status="done", model_version=version)
    FaceResult.objects.bulk_create(
        FaceResult(
            photo=photo, x=i, y=0, w=20, h=20, score=0.9, label=FER_OF[state], state=state,
            probabilities={c: float(c == FER_OF[state]) for c in version.classes},
            model_version=version,
        )
        for i, state in enumerate(states)
    )  # fmt: skip
    return photo


# Read as 2 Angry, 4 Neutral, 2 Engaged, 2 Bored out of 10 faces.
READ = ["Angry"] * 2 + ["Neutral"] * 4 + ["Engaged"] * 2 + ["Bored"] * 2
