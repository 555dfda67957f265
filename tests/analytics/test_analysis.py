"""Photo analysis: results stored per face, retention, failures, retries, recovery, re-analysis."""

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone
from PIL import Image

from analytics import services
from analytics.choices import ImageState, PhotoStatus, Retention
from analytics.models import FaceResult, Photo, Session
from classifier import services as classifier_services
from ml import privacy
from ml.detect import load_annotations
from tests.analytics.conftest import image_bytes, stored_files, upload
from tests.ml.gallery import classroom_scene, draw_face

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
    assert photo.privacy_version == privacy.VERSION
    # No annotated face of 20 px or more resembles its original, found or missed (ml.privacy).
    truth = load_annotations(data_dir / "group-photos")[path.name]
    annotated = [tuple(map(int, f[:4])) for f in truth if not f[4] and min(f[2:4]) >= 20]
    scores = privacy.region_ssims(original, blurred, annotated)
    assert annotated and max(scores) < 0.8, scores


def _photo_with_file(session, image: Image.Image, state: str, boxes=()) -> Photo:
    """An analysed photo whose stored file is `image`, in `state`, with a face row per box."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    photo = Photo.objects.create(
        session=session, status=PhotoStatus.DONE, width=image.width, height=image.height,
        image_state=state,
    )  # fmt: skip
    photo.image.save("old.jpg", ContentFile(buffer.getvalue()))
    FaceResult.objects.bulk_create(
        FaceResult(photo=photo, x=x, y=y, w=w, h=h, score=0.9, label="happy", state="Engaged")
        for x, y, w, h in boxes
    )
    return photo


def test_protect_stored_copies_remakes_old_blurred_copies_once_and_leaves_originals(
    session, media_root
):
    # A copy the box-only blur left: its faces in the clear where the detector missed them.
    faces = [draw_face(96, seed=i, margin=0) for i in range(20)]
    scene = classroom_scene(faces, width=1200, face_sides=(32, 64), seed=0)
    old = _photo_with_file(session, scene.image, ImageState.BLURRED, scene.faces[::2])
    kept = _photo_with_file(session, scene.image, ImageState.ORIGINAL)
    old_name, kept_name = old.image.name, kept.image.name

    out = io.StringIO()
    call_command("protect_stored_copies", stdout=out)
    assert out.getvalue().splitlines() == [
        "1 blurred copy to protect.",
        f"[1/1] photo {old.pk}",
        "Protected 1 copy; 0 failed.",
    ]
    old.refresh_from_db()
    assert old.privacy_version == privacy.VERSION and old.image_state == ImageState.BLURRED
    assert old.image.name != old_name and not (media_root / old_name).exists()
    with old.image.open("rb") as handle:
        copy = Image.open(io.BytesIO(handle.read())).convert("RGB")
    scores = privacy.region_ssims(scene.image, copy, scene.faces)  # found and missed faces
    assert max(scores) < 0.8, scores
    kept.refresh_from_db()
    assert kept.image.name == kept_name and kept.privacy_version == 0  # originals untouched

    again = io.StringIO()
    call_command("protect_stored_copies", stdout=again)  # idempotent
    assert again.getvalue().splitlines() == ["0 blurred copies to protect.",
                                             "Protected 0 copies; 0 failed."]  # fmt: skip
    old.refresh_from_db()
    assert (media_root / old.image.name).exists()


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
    session, model_version, analyse, media_root, django_capture_on_commit_callbacks
):
    session.classroom.retention = Retention.KEEP
    session.classroom.save()
    analyse(session, upload("a.jpg", image_bytes(seed=7)), upload("b.jpg", image_bytes(seed=8)))
    assert len(stored_files(media_root)) == 2
    with django_capture_on_commit_callbacks(execute=True):  # the task runs eagerly
        assert services.set_retention(session.classroom, Retention.DELETE) == 2
    assert stored_files(media_root) == []
    assert set(Photo.objects.values_list("image_state", flat=True)) == {ImageState.DELETED}


def test_a_retention_change_whose_message_was_lost_is_applied_by_the_periodic_resend(
    session, model_version, analyse, media_root
):
    session.classroom.retention = Retention.KEEP
    session.classroom.save()
    analyse(session, upload("a.jpg", image_bytes(seed=7)), upload("b.jpg", image_bytes(seed=8)))
    # Outside django_capture_on_commit_callbacks the task is never sent: a lost message.
    assert services.set_retention(session.classroom, Retention.DELETE) == 2
    assert len(stored_files(media_root)) == 2
    assert services.resend_pending_retention() == 1  # the task runs eagerly
    assert stored_files(media_root) == []
    assert set(Photo.objects.values_list("image_state", flat=True)) == {ImageState.DELETED}
    assert services.resend_pending_retention() == 0


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


@pytest.mark.parametrize("moment", ["at-claim", "mid-analysis", "during-retention"])
def test_deleting_the_session_while_its_photo_is_analysed_stops_quietly(
    session, model_version, eager_celery, monkeypatch, caplog, media_root, moment,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """The eager task path: the session (its photos, results and files) is deleted at one
    moment of the analysis; the task ends without an error logged or raised."""
    from analytics.services import analysis

    def delete_session():
        with django_capture_on_commit_callbacks(execute=True):  # the files go on commit
            Session.objects.filter(pk=session.pk).delete()

    def deleting_first(real):
        def wrapped(*args, **kwargs):
            delete_session()
            return real(*args, **kwargs)

        return wrapped

    if moment == "at-claim":  # between the claim's conditional update and its re-read
        real_claim = Photo.claim

        def claim_then_vanish(self, **updates):
            claimed = real_claim(self, **updates)
            delete_session()
            self.refresh_from_db()  # the re-read the lifecycle does after its update
            return claimed

        monkeypatch.setattr(Photo, "claim", claim_then_vanish)
    elif moment == "mid-analysis":  # the file read, the model not yet run
        monkeypatch.setattr(analysis, "load_classifier", deleting_first(analysis.load_classifier))
    else:
        monkeypatch.setattr(analysis, "apply_retention", deleting_first(analysis.apply_retention))
    caplog.set_level("INFO")
    with django_capture_on_commit_callbacks(execute=True):  # the upload queues the eager task
        services.upload_photos(session, [upload("a.jpg", image_bytes(seed=1))])
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert errors == [], [r.getMessage() for r in errors]
    assert any("was deleted during its analysis" in r.getMessage() for r in caplog.records)
    assert not Photo.objects.exists() and not FaceResult.objects.exists()
    assert stored_files(media_root) == []


def test_a_failed_photo_or_job_records_no_server_path():
    from classifier.models import Job

    error = FileNotFoundError(2, "No such file or directory")
    error.filename = "/srv/edumood/var/media/photos/1/2/x.jpg"
    for row in (Photo(), Job()):
        reason = row.failure_reason(error)
        assert "/srv" not in reason and "x.jpg" in reason, reason


def test_a_run_that_lost_its_claim_overwrites_nothing(session, model_version, analyse):
    """A first run declared abandoned while it still worked (its heartbeat was held up) finishes
    after a second run analysed and blurred the photo: its results (read from the original it
    loaded) and its close are dropped (issue 24, item 5)."""
    from analytics.services.analysis import _analyse_and_store

    session.classroom.retention = Retention.KEEP
    session.classroom.save()
    (photo,) = analyse(session, upload("a.jpg", image_bytes(seed=7)))
    FaceResult.objects.create(
        photo=photo, x=1, y=1, w=5, h=5, score=0.9, label="happy", state="Engaged",
        probabilities={"happy": 1.0}, model_version=model_version,
    )  # fmt: skip
    faces = list(photo.faces.values_list("pk", flat=True))
    Photo.objects.filter(pk=photo.pk).update(attempts=2)  # the second run's claim, now done
    first_run = Photo.objects.get(pk=photo.pk)
    first_run.status, first_run.attempts = PhotoStatus.ANALYSING, 1

    _analyse_and_store(first_run)
    first_run.finish()
    first_run.fail("the first run's late failure")
    photo.refresh_from_db()
    assert (photo.status, photo.error, photo.attempts) == ("done", "", 2)
    assert list(photo.faces.values_list("pk", flat=True)) == faces

    # A run that still holds its claim closes the photo as before.
    Photo.objects.filter(pk=photo.pk).update(status=PhotoStatus.ANALYSING)
    photo.refresh_from_db()
    photo.fail("a real failure")
    assert (photo.status, photo.error) == ("failed", "a real failure")


def test_queued_photos_whose_message_was_lost_are_sent_again_by_the_sweep(
    session, model_version, analyse, settings, django_capture_on_commit_callbacks
):
    """Rows committed as queued whose message never reached the broker (issue 24, item 2):
    one stamped sent long ago, one never sent (a crash between the commit and the publish)."""
    session.classroom.retention = Retention.KEEP
    session.classroom.save()
    settings.EDUMOOD_RESEND_SECONDS = 60
    lost, unsent, recent = analyse(
        session, *[upload(f"{i}.jpg", image_bytes(seed=i)) for i in range(3)]
    )
    long_ago = timezone.now() - timedelta(seconds=61)
    Photo.objects.filter(pk=lost.pk).update(status=PhotoStatus.QUEUED, sent_at=long_ago)
    Photo.objects.filter(pk=unsent.pk).update(status=PhotoStatus.QUEUED, sent_at=None)
    Photo.objects.filter(pk=recent.pk).update(status=PhotoStatus.QUEUED, sent_at=timezone.now())
    assert Photo.sweep() >= 1  # (eager: the first one's end sends the other as it tops up)
    assert Photo.sweep() == 0  # the recent one's message may still arrive
    for photo in (lost, unsent, recent):
        photo.refresh_from_db()
    assert (lost.status, unsent.status, recent.status) == ("done", "done", "queued")
    assert lost.attempts == unsent.attempts == 2


def test_each_teacher_has_a_window_of_photos_in_the_broker_topped_up_as_they_finish(
    session, other_teacher, settings, monkeypatch
):
    """Hundreds of one teacher's photos wait in the database, a window at a time, so another
    teacher's photo is sent at once and waits behind a window, not behind all of them. (The
    uploads' commit callbacks do not run here: every photo waits; the sends are recorded.)"""
    from edumood_site import work
    from tests.analytics.conftest import make_classroom

    settings.EDUMOOD_FAIR_SHARE_WINDOW = 3
    sent = []
    monkeypatch.setattr(work, "enqueue", lambda task, pk, queue: sent.append(pk))
    files = [upload(f"{i}.jpg", image_bytes(seed=i)) for i in range(8)]
    mine = [p.pk for p in services.upload_photos(session, files).photos]
    other_session = make_classroom(other_teacher).sessions.create(title="Other")
    (theirs,) = services.upload_photos(other_session, [upload("b.jpg", image_bytes())]).photos

    assert Photo.dispatch() == 4
    assert sent == [mine[0], theirs.pk, mine[1], mine[2]]  # in turn: one of each, then the next
    assert Photo.dispatch() == 0  # every window is full
    Photo.objects.filter(pk=mine[0]).update(status=PhotoStatus.DONE)
    assert Photo.dispatch(session.classroom.owner_id) == 1 and sent[-1] == mine[3]


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
