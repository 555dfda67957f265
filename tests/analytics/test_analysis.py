"""Photo analysis: results stored per face, retention, failures, retries, recovery, re-analysis."""

import csv
import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone
from PIL import Image

from analytics import services
from analytics.choices import ImageState, PhotoStatus, Retention
from analytics.models import FaceResult, Photo
from classifier import services as classifier_services
from tests.analytics.conftest import image_bytes, stored_files, upload

pytestmark = pytest.mark.django_db


def group_photos(data_dir: Path, count: int = 2) -> list[Path]:
    """Group photos with several faces each, from the shared data's group-photos folder."""
    folder = data_dir / "group-photos"
    with (folder / "images.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if 4 <= int(r["num_faces"]) <= 12]
    return [folder / "images" / r["filename"] for r in sorted(rows, key=lambda r: r["filename"])][
        :count
    ]


@pytest.fixture
def fresh_model_cache(monkeypatch):
    """An empty per-process classifier cache, and a count of real checkpoint loads."""
    from ml.predict import Classifier

    monkeypatch.setattr(classifier_services, "_CLASSIFIERS", {})
    loads = []
    real_load = Classifier.load.__func__

    def counting_load(cls, *args, **kwargs):
        loads.append(args)
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(Classifier, "load", classmethod(counting_load))
    return loads


def test_a_photo_without_faces_is_done_with_zero_faces_and_the_model_loads_once(
    session, model_version, analyse, fresh_model_cache, media_root
):
    photos = analyse(
        session, upload("a.jpg", image_bytes(seed=1)), upload("b.png", image_bytes("PNG", seed=2))
    )
    for photo in photos:
        assert (photo.status, photo.error, photo.faces.count()) == ("done", "", 0)
        assert photo.model_version == model_version and photo.analysed_at is not None
        assert photo.attempts == 1
        # Default retention: a blurred copy replaces the original once results are stored.
        assert photo.image_state == ImageState.BLURRED and photo.image
    assert len(fresh_model_cache) == 1  # two photos, one checkpoint load in this process
    files = stored_files(media_root)  # both re-encoded as JPEG copies, b.png included
    assert len(files) == 2 and all(name.endswith(".jpg") for name in files)
    summary = services.session_summary(session)
    assert summary["faces"] == 0 and summary["engagement_index"] is None
    assert summary["photos"]["done"] == 2


def test_real_group_photo_gets_one_row_per_face_and_a_blurred_copy(
    session, model_version, analyse, data_dir, media_root
):
    session.classroom.retention = Retention.BLUR
    session.classroom.save()
    path = group_photos(data_dir, 1)[0]
    original = Image.open(path).convert("RGB")
    (photo,) = analyse(session, upload(path.name, path.read_bytes()))
    assert photo.status == PhotoStatus.DONE, photo.error
    faces = list(photo.faces.all())
    assert len(faces) >= 2
    assert (photo.width, photo.height) == original.size
    for face in faces:
        assert 0 <= face.x < photo.width and 0 <= face.y < photo.height
        assert set(face.probabilities) == set(model_version.classes)
        assert sum(face.probabilities.values()) == pytest.approx(1, abs=1e-3)
        assert face.label == max(face.probabilities, key=face.probabilities.get)
        assert face.state == model_version.state_mapping[face.label]
        assert face.model_version == model_version
    assert photo.image_state == ImageState.BLURRED
    assert len(stored_files(media_root)) == 1
    with photo.image.open("rb") as handle:
        blurred = Image.open(io.BytesIO(handle.read()))
        assert not blurred.getexif()
        blurred = blurred.convert("RGB")
    face = max(faces, key=lambda f: f.w * f.h)
    box = (face.x, face.y, face.x + face.w, face.y + face.h)
    inside_before = np.asarray(original.crop(box), dtype=float)
    inside_after = np.asarray(blurred.crop(box), dtype=float)
    assert np.abs(inside_before - inside_after).mean() > 5  # the face is no longer the face
    # Blurring smooths the face: far less fine detail (pixel-to-pixel change) than before.
    assert (
        np.abs(np.diff(inside_after, axis=1)).mean()
        < 0.5 * np.abs(np.diff(inside_before, axis=1)).mean()
    )


def test_keep_retention_keeps_the_original_bytes(session, model_version, analyse):
    session.classroom.retention = Retention.KEEP
    session.classroom.save()
    data = image_bytes(seed=3)
    (photo,) = analyse(session, upload("a.jpg", data))
    assert photo.image_state == ImageState.ORIGINAL
    with photo.image.open("rb") as handle:
        assert handle.read() == data


def test_a_corrupt_stored_file_fails_with_its_reason_and_can_be_retried(
    session, model_version, analyse, django_capture_on_commit_callbacks
):
    session.classroom.retention = Retention.KEEP
    session.classroom.save()
    (photo,) = analyse(session, upload("a.jpg", image_bytes(seed=4)))
    with pytest.raises(services.PhotoActionError, match="Only failed photos"):
        services.retry_photo(photo)
    good = photo.image.read()
    photo.image.close()
    Path(photo.image.path).write_bytes(good[:200])  # damaged on disk after the upload
    Photo.objects.filter(pk=photo.pk).update(status=PhotoStatus.QUEUED)
    services.analyse_photo(photo.pk)
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.FAILED
    assert "corrupt or truncated" in photo.error

    Path(photo.image.path).write_bytes(good)
    with django_capture_on_commit_callbacks(execute=True):
        services.retry_photo(photo)
    photo.refresh_from_db()
    assert (photo.status, photo.error, photo.attempts) == ("done", "", 1)


def test_without_an_active_model_the_photo_fails_with_a_clear_reason(session, analyse):
    (photo,) = analyse(session, upload("a.jpg", image_bytes()))
    assert photo.status == PhotoStatus.FAILED
    assert "No active model version" in photo.error
    assert photo.image_state == ImageState.ORIGINAL  # nothing uploaded is lost on failure


def test_a_photo_another_worker_is_analysing_is_left_alone(session, model_version):
    (photo,) = services.upload_photos(session, [upload("a.jpg", image_bytes())]).photos
    Photo.objects.filter(pk=photo.pk).update(
        status=PhotoStatus.ANALYSING, heartbeat_at=timezone.now(), attempts=1
    )
    services.analyse_photo(photo.pk)
    photo.refresh_from_db()
    assert (photo.status, photo.attempts) == ("analysing", 1)


def test_recovery_sweep_requeues_or_fails_photos_whose_worker_died(
    session, model_version, analyse, settings
):
    session.classroom.retention = Retention.KEEP  # analysed at upload, then once more
    session.classroom.save()
    stale = timezone.now() - timedelta(seconds=settings.EDUMOOD_JOB_STALE_SECONDS + 5)
    first, second, fresh = analyse(
        session, *[upload(f"{i}.jpg", image_bytes(seed=i)) for i in range(3)]
    )
    Photo.objects.filter(pk=first.pk).update(
        status=PhotoStatus.ANALYSING, heartbeat_at=stale, attempts=1
    )
    Photo.objects.filter(pk=second.pk).update(
        status=PhotoStatus.ANALYSING, heartbeat_at=stale, attempts=Photo.MAX_ATTEMPTS
    )
    Photo.objects.filter(pk=fresh.pk).update(
        status=PhotoStatus.ANALYSING, heartbeat_at=timezone.now(), attempts=1
    )
    assert Photo.recover_abandoned() == 2
    first.refresh_from_db(), second.refresh_from_db(), fresh.refresh_from_db()
    assert (first.status, first.attempts) == ("done", 2)  # queued again and analysed (eager)
    assert second.status == PhotoStatus.FAILED and second.error.endswith(Photo.WORKER_STOPPED)
    assert fresh.status == PhotoStatus.ANALYSING


def test_reanalysis_replaces_results_with_the_active_model_and_skips_deleted_originals(
    session, model_version, analyse, django_capture_on_commit_callbacks, tmp_path
):
    from classifier.services import promote, register_model_version
    from ml.checkpoint import load_checkpoint, save_checkpoint

    session.classroom.retention = Retention.KEEP
    session.classroom.save()
    (kept,) = analyse(session, upload("a.jpg", image_bytes(seed=5)))
    gone = services.upload_photos(session, [upload("b.jpg", image_bytes(seed=6))]).photos[0]
    FaceResult.objects.create(
        photo=gone, x=1, y=1, w=5, h=5, score=0.9, label="happy", state="Engaged",
        probabilities={"happy": 1.0}, model_version=model_version,
    )  # fmt: skip
    Photo.objects.filter(pk=gone.pk).update(
        status=PhotoStatus.DONE, image=None, image_state=ImageState.DELETED
    )
    checkpoint = load_checkpoint(model_version.checkpoint.path)
    checkpoint["metrics"] = {"accuracy": 0.5}
    save_checkpoint(tmp_path / "newer.pt", checkpoint)
    newer = promote(register_model_version(tmp_path / "newer.pt", name="newer"))

    with django_capture_on_commit_callbacks(execute=True):
        queued, skipped = services.reanalyse_session(session)
    assert (queued, skipped) == (1, 1)
    kept.refresh_from_db()
    assert kept.status == PhotoStatus.DONE and kept.model_version == newer
    gone_faces = FaceResult.objects.filter(photo=gone)
    assert [f.model_version for f in gone_faces] == [model_version]  # old results kept


def test_tightening_retention_applies_to_photos_already_analysed(
    session, model_version, analyse, media_root
):
    session.classroom.retention = Retention.KEEP
    session.classroom.save()
    analyse(session, upload("a.jpg", image_bytes(seed=7)), upload("b.jpg", image_bytes(seed=8)))
    assert len(stored_files(media_root)) == 2
    assert services.set_retention(session.classroom, Retention.DELETE) == 2
    assert stored_files(media_root) == []
    assert set(Photo.objects.values_list("image_state", flat=True)) == {ImageState.DELETED}


@pytest.mark.parametrize("target", ["classroom", "session"])
def test_deleting_a_classroom_or_session_deletes_its_files(
    session, media_root, analyse, django_capture_on_commit_callbacks, target
):
    analyse(session, *[upload(f"{i}.jpg", image_bytes(seed=i)) for i in range(2)])
    (other,) = analyse(
        type(session).objects.create(classroom=session.classroom, title="Other"),
        upload("x.jpg", image_bytes(seed=9)),
    )
    assert len(stored_files(media_root)) == 3
    with django_capture_on_commit_callbacks(execute=True):
        (session.classroom if target == "classroom" else session).delete()
    remaining = stored_files(media_root)
    if target == "classroom":
        assert remaining == []
    else:
        assert remaining == [other.image.name.removeprefix("photos/")]


def test_a_photo_stopped_at_the_soft_time_limit_fails_with_the_reason(
    session, model_version, monkeypatch
):
    from celery.exceptions import SoftTimeLimitExceeded

    def too_slow(photo):
        raise SoftTimeLimitExceeded()

    from analytics.services import analysis

    monkeypatch.setattr(analysis, "_analyse", too_slow)
    (photo,) = services.upload_photos(session, [upload("a.jpg", image_bytes())]).photos
    services.analyse_photo(photo.pk, soft_time_limit=300)
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.FAILED and photo.attempts == 1
    assert "inference queue's time limit of 300 s" in photo.error


def test_an_online_sessions_screenshot_is_detected_tile_by_tile(
    classroom, model_version, analyse, data_dir
):
    """The same 7x7 meeting screenshot (48 FER2013 faces of 40-66 px, 1280 px wide) in an
    in-person and an online session of a classroom in the default mode: only the online
    session finds every face, with no setting."""
    from analytics.choices import SessionKind
    from analytics.models import Session
    from tests.ml.gallery import fer_faces, meeting_screenshot
    from tests.ml.test_detect import _findable_alone

    faces = [f for f in fer_faces(data_dir, 70, seed=1) if _findable_alone(f, 144, 0.5)][:48]
    gallery = meeting_screenshot(faces, 1280, 7, 7, empty=1, seed=1)
    buffer = io.BytesIO()
    gallery.image.save(buffer, "PNG")
    found = {}
    for kind in (SessionKind.IN_PERSON, SessionKind.ONLINE):
        session = Session.objects.create(classroom=classroom, title=kind.label, kind=kind)
        (photo,) = analyse(session, upload("meeting.png", buffer.getvalue()))
        assert photo.status == PhotoStatus.DONE, photo.error
        found[kind] = photo.faces.count()
    assert found[SessionKind.ONLINE] == 48 and found[SessionKind.IN_PERSON] < 46, found
