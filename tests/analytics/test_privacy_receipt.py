"""The privacy receipt for parents: consent, what is kept and for how long, the model's limits,
who opened the results; class-level only, owner only, logged, printable under a strict CSP."""

import json
from datetime import UTC, date, datetime

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from analytics.choices import AccessAction, ImageState
from analytics.models import AccessRecord, Consent, Photo, Session
from classifier.models import AuditReport, Dataset, DatasetVersion, ModelVersion
from ml.predict import DEFAULT_CALIBRATION
from tests.analytics.conftest import add_results, make_classroom
from tests.conftest import measure_on_reference
from tests.strict_csp import assert_strict_csp_possible

pytestmark = pytest.mark.django_db


def receipt_world(teacher, measured: bool = True) -> dict:
    """A classroom with two consent records, photos in every stored state analysed by a model
    with the shipped calibration and a bias audit, and access records on two days."""
    classroom = make_classroom(teacher, name="7B Science", subject="Science")
    Consent.objects.create(
        classroom=classroom, obtained_from="Guardians of every pupil", method="electronic",
        obtained_on=date(2024, 9, 20), notes="Tom's mother asked for a copy.", recorded_by=teacher,
    )  # fmt: skip
    version = ModelVersion.objects.create(
        name="EduMood default (FER2013)", arch="edu-vgg-s", classes=["happy", "sad"],
        state_mapping={}, normalisation="standardize", checkpoint="models/d.pt",
        checkpoint_sha256="d" * 64, metrics={"accuracy": 0.668}, is_active=True,
        calibration=json.loads(DEFAULT_CALIBRATION.read_text()),
    )  # fmt: skip
    if measured:
        measure_on_reference(version, 0.67)  # its scorecard: what the receipt may state
    dataset = DatasetVersion.objects.create(
        dataset=Dataset.objects.create(name="FER val"), number=1, content_hash="0" * 64
    )
    finding = {"attribute": "age", "group": "60+", "n": 80, "accuracy": 0.52,
               "overall_accuracy": 0.67, "difference": -0.15, "ci_high": 0.6}  # fmt: skip
    AuditReport.objects.create(
        model_version=version, dataset_version=dataset, attributes=["age", "gender"],
        source="model-inferred", result={"n": 3589, "findings": [finding]},
    )  # fmt: skip
    session = Session.objects.create(classroom=classroom, title="Fractions")
    photos = [
        add_results(session, ["Engaged", "Bored", "Bored"], version=version),
        add_results(session, ["Neutral"], version=version),
        add_results(session, [], version=version),
    ]
    for photo, state in zip(photos, ImageState, strict=True):
        Photo.objects.filter(pk=photo.pk).update(image_state=state, original_name="tom.jpg")
    admin = get_user_model().objects.create_user("head", password="x-Long-pass-1", is_staff=True)
    for user, day, action in (
        (teacher, 3, AccessAction.VIEWED_SESSION),
        (teacher, 3, AccessAction.VIEWED_SESSION),
        (teacher, 3, AccessAction.EXPORTED_CSV),
        (admin, 4, AccessAction.VIEWED_DASHBOARD),
    ):
        record = AccessRecord.objects.create(
            user=user, username=user.username, action=action, classroom=classroom,
            classroom_name=classroom.name, session=session, detail="photo 7 (blurred)",
        )  # fmt: skip
        # The log is append-only; the base manager (kept plain for Django's cascades) back-dates.
        back_dated = datetime(2024, 10, day, 9, tzinfo=UTC)
        AccessRecord._base_manager.filter(pk=record.pk).update(at=back_dated)
    return {"classroom": classroom, "version": version, "admin": admin}


def test_the_receipt_says_what_was_agreed_kept_measured_and_opened(client, teacher):
    world = receipt_world(teacher)
    classroom = world["classroom"]
    client.force_login(teacher)
    url = reverse("analytics:privacy-receipt", args=[classroom.pk])
    assert url in client.get(reverse("analytics:classroom", args=[classroom.pk])).content.decode()
    response = client.get(url)
    assert response.status_code == 200
    assert_strict_csp_possible(response.content.decode(), "privacy receipt")
    page = " ".join(response.content.decode().split())
    # Consent: the record in force, and the history.
    assert "Electronic form or e-mail</strong> from <strong>Guardians of every pupil" in page
    assert page.count("<tr><td>") >= 2 and "Parents of all 24 students" in page
    # What is kept and for how long (the classroom keeps a coarse copy, the default).
    assert "Deleted as soon as the photo&#x27;s analysis is stored" in page
    assert "at most 64 soft blocks across" in page and "no automatic expiry" in page
    assert "1 original," in page and "1 coarse copy, 1 deleted" in page
    assert "the results of 4 faces" in page
    # The model and its limits, from its calibration and its bias audit.
    assert "EduMood default (FER2013)" in page and "67% of faces" in page
    # The shipped calibration's share of validation faces in the right state, and Angry's.
    shipped = json.loads(DEFAULT_CALIBRATION.read_text())
    confusion = np.asarray(shipped["confusion"])
    right = round(100 * np.trace(confusion) / confusion.sum())  # 74 for v4, 73 for v3
    angry = shipped["states"].index("Angry")
    angry_right = round(100 * confusion[angry, angry] / confusion[angry].sum())
    assert f"right classroom state for {right}%: about 1 in 4 faces is read wrongly" in page
    assert f"angry is read as angry {angry_right}% of the time" in page
    assert "age “60+” (52% against 67% overall)" in page and "model-inferred" in page
    # Who opened the results: per day and person, with their role (and this visit, logged).
    assert AccessRecord.objects.filter(action=AccessAction.PRIVACY_RECEIPT).count() == 1
    assert "Exported CSV; Viewed a session&#x27;s results (2×)" in page
    assert "Teacher of this classroom" in page and "Administrator" in page
    assert "2 people on 3 days" in page
    # Nothing about one student: no consent notes, file names, photo ids, faces' states.
    for private in ("Tom", "tom.jpg", "photo 7", "Fractions", "probabilit"):
        assert private not in page.replace("probabilities, and the model", ""), private


def test_a_model_without_a_reference_measurement_gets_no_accuracy_claim(client, teacher):
    world = receipt_world(teacher, measured=False)
    client.force_login(teacher)
    page = client.get(reverse("analytics:privacy-receipt", args=[world["classroom"].pk]))
    text = page.content.decode()
    assert "How often it is right is not stated here" in text and "67% of faces" not in text
    assert "of faces is read wrongly" not in text


@pytest.mark.parametrize(
    "retention, originals, copies",
    [
        ("keep", "Kept as uploaded, faces recognisable", "None: the original is kept instead."),
        ("delete", "Deleted as soon as", "None: no copy of the photo is kept."),
    ],
)
def test_the_receipt_follows_the_retention_setting(client, teacher, retention, originals, copies):
    classroom = make_classroom(teacher, retention=retention, hide_face_detail=True)
    client.force_login(teacher)
    page = client.get(reverse("analytics:privacy-receipt", args=[classroom.pk])).content.decode()
    assert originals in page and copies in page
    assert "class-level totals only" in page
    assert "Nobody has opened" not in page  # this visit is the first record


def test_only_the_owner_opens_the_receipt_as_with_results(client, teacher, other_teacher):
    classroom = make_classroom(teacher)
    url = reverse("analytics:privacy-receipt", args=[classroom.pk])
    assert client.get(url).url.startswith("/login/")
    admin = get_user_model().objects.create_user("boss", password="x-Long-pass-1", is_staff=True)
    for user in (other_teacher, admin):
        other = Client()
        other.force_login(user)
        assert other.get(url).status_code == 404
    assert not AccessRecord.objects.exists()
