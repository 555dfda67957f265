"""Issue 23 item 4, server side: each face's state probabilities, duplicate photos named in the
upload's answer, and what the session page carries for the popover and the lightbox."""

import io

import pytest
from django.urls import reverse

from analytics.models import FaceResult, Photo
from classifier.models import ModelVersion
from tests.analytics.conftest import image_bytes

pytestmark = pytest.mark.django_db

# A face read as sad, with the 7 FER expressions' probabilities.
EXPRESSIONS = {"angry": 0.05, "disgust": 0.02, "fear": 0.13, "happy": 0.1, "neutral": 0.25,
               "sad": 0.4, "surprise": 0.05}  # fmt: skip


def _face(session, version):
    photo = Photo.objects.create(session=session, status="done", width=200, height=100)
    return FaceResult.objects.create(
        photo=photo, x=10, y=5, w=20, h=20, score=0.9, label="sad", state="Bored",
        probabilities=EXPRESSIONS, model_version=version,
    )  # fmt: skip


def test_each_face_carries_the_probability_of_each_state_by_its_models_mapping(api, session):
    version = ModelVersion.objects.create(
        name="fer", arch="edu-vgg-s", classes=list(EXPRESSIONS), normalisation="per-image",
        state_mapping={"angry": "Angry", "disgust": "Angry", "fear": "Bored", "happy": "Engaged",
                       "neutral": "Neutral", "sad": "Bored", "surprise": "Engaged"},
        checkpoint="models/fer.pt", checkpoint_sha256="f" * 64,
    )  # fmt: skip
    face = _face(session, version)
    (shown,) = api.get(f"/api/photos/{face.photo_id}/").json()["faces"]
    states = shown["state_probabilities"]
    assert list(states) == ["Bored", "Neutral", "Engaged", "Angry"]  # likeliest first
    assert states == pytest.approx({"Bored": 0.53, "Neutral": 0.25, "Engaged": 0.15, "Angry": 0.07})
    assert shown["probabilities"] == EXPRESSIONS  # the 7 expressions, for "details"
    # Without a model version (deleted), FER's own mapping gives the same sums.
    FaceResult.objects.filter(pk=face.pk).update(model_version=None)
    (shown,) = api.get(f"/api/photos/{face.photo_id}/").json()["faces"]
    assert shown["state_probabilities"]["Bored"] == pytest.approx(0.53)


def test_a_photo_uploaded_twice_is_named_as_a_duplicate_in_the_answer(
    api, session, eager_celery, media_root
):
    photo = image_bytes(size=(120, 90), seed=3)
    url = f"/api/sessions/{session.pk}/photos/"

    def named(name):
        file = io.BytesIO(photo)
        file.name = name
        return file

    first = api.post(url, {"image": [named("IMG_0001.jpg")]}, format="multipart")
    assert first.status_code == 202 and first.json()["errors"] == []
    again = api.post(url, {"image": [named("IMG_0001 (1).jpg")]}, format="multipart")
    body = again.json()
    assert again.status_code == 400 and body["photos"] == []
    assert body["errors"] == [
        {
            "file": "IMG_0001 (1).jpg",
            "detail": "IMG_0001 (1).jpg is the same photo as IMG_0001.jpg, already in this "
            "session, so it was not stored or counted again.",
            "duplicate_of": "IMG_0001.jpg",
        }
    ]
    assert session.photos.count() == 1


def test_the_session_page_has_a_lightbox_and_explains_numbered_boxes(client, teacher, session):
    client.force_login(teacher)
    page = client.get(reverse("analytics:session", args=[session.pk])).content.decode()
    assert '<dialog class="lightbox" id="lightbox"' in page
    assert "Boxes are numbered; click or tap one" in page
