"""Photos analysed end to end by a real `celery worker` process on a real Redis broker."""

import io
import time
from datetime import date

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from accounts.services import issue_token
from analytics import services
from analytics.models import Classroom, Consent, Photo, Session
from classifier.choices import JobKind, JobStatus
from classifier.models import Job
from tests.analytics.conftest import image_bytes
from tests.conftest import concurrent_gets, wait_until
from tests.photos import DRAWN_FACES, drawn_group_photo

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _group_photo(data_dir_or_none) -> tuple[str, bytes]:
    """A real group photo from the shared data, else a photo of DRAWN_FACES drawn faces."""
    if data_dir_or_none is not None:
        folder = data_dir_or_none / "group-photos" / "images"
        path = sorted(folder.glob("*Students_Schoolkids*.jpg"))[0]
        return path.name, path.read_bytes()
    buffer = io.BytesIO()
    drawn_group_photo().save(buffer, "JPEG", quality=92)
    return "drawn.jpg", buffer.getvalue()


@pytest.fixture
def shared_data(request):
    try:
        return request.getfixturevalue("data_dir")
    except pytest.skip.Exception:
        return None


def new_session(username: str) -> Session:
    owner = get_user_model().objects.create_user(username)
    classroom = Classroom.objects.create(owner=owner, name="7B", retention="keep")
    Consent.objects.create(
        classroom=classroom, obtained_from="Parents", method="written",
        obtained_on=date(2024, 9, 1), recorded_by=owner,
    )  # fmt: skip
    return Session.objects.create(classroom=classroom, title="Group work")


@pytest.fixture
def session(model_version, settings, monkeypatch):
    # The worker is another process: it must find the checkpoint and photos where we put them.
    monkeypatch.setenv("MEDIA_ROOT", str(settings.MEDIA_ROOT))
    return new_session("teacher")


def _status(photo):
    photo.refresh_from_db()
    return photo.status


def _terminal(*photos) -> bool:
    return all(_status(photo) in ("done", "failed") for photo in photos)


def test_uploaded_photos_are_analysed_by_a_real_worker(worker_factory, session, shared_data):
    worker_factory()
    name, data = _group_photo(shared_data)
    blank = io.BytesIO()
    Image.new("RGB", (320, 240), "white").save(blank, "PNG")
    outcome = services.upload_photos(
        session, [SimpleUploadedFile(name, data), SimpleUploadedFile("blank.png", blank.getvalue())]
    )
    group, empty = outcome.photos
    wait_until(lambda: _terminal(group, empty), 120, message="both photos analysed")
    assert (group.status, group.error) == ("done", "")
    assert (empty.status, empty.faces.count()) == ("done", 0)
    if shared_data is not None:
        assert group.faces.count() >= 2
    else:
        assert group.faces.count() == DRAWN_FACES
    summary = services.session_summary(session)
    assert summary["photos"]["done"] == 2 and summary["faces"] == group.faces.count()


def test_a_photo_whose_worker_is_killed_is_analysed_again_within_30_s(
    worker_factory, beat_factory, session, shared_data
):
    worker = worker_factory()  # jobs' default stale time of 60 s; photos have their own
    beat_factory(worker)  # its sweep queues the abandoned photo again
    name, data = _group_photo(shared_data)
    (photo,) = services.upload_photos(session, [SimpleUploadedFile(name, data)]).photos
    # The first analysis in a process loads the model: a window of seconds to kill it in.
    wait_until(lambda: _status(photo) == "analysing", 60, 0.05, message="analysis under way")
    worker.kill()
    killed = time.monotonic()
    assert Photo.objects.get(pk=photo.pk).status == "analysing"  # what a crash leaves behind
    worker_factory()
    wait_until(lambda: Photo.objects.get(pk=photo.pk).attempts == 2, 60, message="a new attempt")
    assert time.monotonic() - killed < 30
    wait_until(lambda: _terminal(photo), 120, message="the photo to be analysed again")
    assert photo.status == "done", photo.error
    assert photo.attempts == 2


def test_deleting_a_session_mid_analysis_leaves_no_error_in_the_worker(
    worker_factory, session, shared_data
):
    worker = worker_factory()
    name, data = _group_photo(shared_data)
    photos = services.upload_photos(
        session, [SimpleUploadedFile(f"{i}-{name}", data) for i in range(3)]
    ).photos
    # The first analysis in a process loads the model: a window of seconds to delete in.
    wait_until(lambda: _status(photos[0]) == "analysing", 60, 0.05, message="analysis under way")
    session.delete()  # the teacher's delete: rows now, files on commit

    def settled() -> bool:
        """The analysis under way saw the deletion, and every task received has ended (a photo
        may get more than one message: sending is at least once)."""
        log = worker.log_path.read_text(errors="replace")
        received = log.count(" received")
        ended = log.count("Task analytics.analyse_photo[") - received
        return "was deleted during its analysis" in log and ended >= received

    wait_until(settled, 60, message="the analysis to stop and every task to end")
    log = worker.log_path.read_text(errors="replace")
    for trouble in ("DoesNotExist", "Traceback", "ERROR/", "raised unexpected"):
        assert trouble not in log, log[-3000:]
    assert photos and not Photo.objects.exists()


def test_a_burst_of_health_checks_leaves_uploads_their_broker_connections(
    worker_factory, web_factory, session
):
    """30 concurrent /healthz once wedged the broker pool (each ping held one pooled connection
    and waited for a second): every later /healthz and upload hung (issue 24, item 1)."""
    web = web_factory(worker_factory())
    _, token = issue_token(session.classroom.owner, "burst")

    answers, seconds = concurrent_gets(f"{web.url}/healthz", 30, timeout=15)
    assert answers == [200] * 30, answers
    assert seconds < 15
    started = time.monotonic()
    upload = requests.post(
        f"{web.url}/api/sessions/{session.pk}/photos/",
        files=[("image", ("one.jpg", image_bytes(size=(320, 240)), "image/jpeg"))],
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert upload.status_code == 202, upload.text
    assert time.monotonic() - started < 10
    (photo,) = Photo.objects.filter(session=session)
    wait_until(lambda: _terminal(photo), 60, message="the photo to be analysed")
    assert photo.status == "done", photo.error
    assert requests.get(f"{web.url}/healthz", timeout=15).status_code == 200


def test_queued_work_whose_message_never_reached_the_broker_is_sent_again(
    worker_factory, beat_factory, session, monkeypatch, settings
):
    """Rows committed as queued whose message was lost (a wedged publish stamped it sent; a
    crash before the publish left it unsent) are run once the sweep that beat sends finds
    them."""
    monkeypatch.setenv("EDUMOOD_RESEND_SECONDS", "2")
    lost, unsent = (
        Photo(session=session, original_name=f"{name}.jpg", sent_at=sent_at)
        for name, sent_at in (("lost", timezone.now()), ("unsent", None))
    )
    for photo in (lost, unsent):
        photo.image.save(f"{photo.original_name}", ContentFile(image_bytes(size=(320, 240))))
    job = Job.objects.create(
        kind=JobKind.DIAGNOSE, params={"queue": "training", "seconds": 1, "size": 64},
        sent_at=timezone.now(),
    )  # fmt: skip
    beat = beat_factory(worker_factory())
    wait_until(lambda: _terminal(lost, unsent), 60, message="both photos analysed")
    assert (lost.status, unsent.status) == ("done", "done")
    wait_until(lambda: Job.objects.get(pk=job.pk).is_terminal, 60, message="the job to run")
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED
    # Nothing else sent them: the sweep did, on beat's schedule, run by the worker.
    assert "Sending due task sweep-background-work" in beat.log_path.read_text()
    assert "sent again" in " ".join(Job.objects.get(pk=job.pk).log)


def test_one_teachers_hundreds_of_photos_do_not_hold_up_anothers(
    worker_factory, session, monkeypatch, settings
):
    """Teacher A queues many photos, then teacher B one: B's is analysed after at most a
    window of A's, not after all of them (issue 24, item 6)."""
    settings.EDUMOOD_FAIR_SHARE_WINDOW = 2
    monkeypatch.setenv("EDUMOOD_FAIR_SHARE_WINDOW", "2")
    worker_factory()
    photos = [
        SimpleUploadedFile(f"a{i}.jpg", image_bytes(size=(320, 240), seed=i)) for i in range(40)
    ]
    a_photos = services.upload_photos(session, photos).photos
    (b_photo,) = services.upload_photos(
        new_session("teacher-b"), [SimpleUploadedFile("b.jpg", image_bytes(size=(320, 240)))]
    ).photos
    wait_until(lambda: _terminal(b_photo), 120, 0.05, message="teacher B's photo analysed")
    a_done = Photo.objects.filter(pk__in=[p.pk for p in a_photos], status="done").count()
    assert b_photo.status == "done", b_photo.error
    assert a_done <= 5, f"{a_done} of teacher A's 40 photos went first"
    wait_until(lambda: _terminal(*a_photos), 300, message="teacher A's photos analysed")
    assert {p.status for p in a_photos} == {"done"}
