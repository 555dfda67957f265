"""Photos analysed end to end by a real `celery worker` process on a real Redis broker."""

import io
import time
from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from analytics import services
from analytics.models import Classroom, Consent, Photo, Session
from tests.conftest import wait_until
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


@pytest.fixture
def session(model_version, settings, monkeypatch):
    # The worker is another process: it must find the checkpoint and photos where we put them.
    monkeypatch.setenv("MEDIA_ROOT", str(settings.MEDIA_ROOT))
    owner = get_user_model().objects.create_user("teacher")
    classroom = Classroom.objects.create(owner=owner, name="7B", retention="keep")
    Consent.objects.create(
        classroom=classroom, obtained_from="Parents", method="written",
        obtained_on=date(2024, 9, 1), recorded_by=owner,
    )  # fmt: skip
    return Session.objects.create(classroom=classroom, title="Group work")


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
    worker_factory, session, shared_data
):
    worker = worker_factory()  # jobs' default stale time of 60 s; photos have their own
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

    def handled() -> int:
        log = worker.log_path.read_text(errors="replace")
        return log.count("Task analytics.analyze_photo[") - log.count("received")

    wait_until(lambda: handled() >= len(photos), 60, message="every task to end")
    log = worker.log_path.read_text(errors="replace")
    for trouble in ("DoesNotExist", "Traceback", "ERROR/", "raised unexpected"):
        assert trouble not in log, log[-3000:]
    assert "was deleted during its analysis" in log
    assert not Photo.objects.exists()
