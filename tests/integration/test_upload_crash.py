"""A web process killed while it stores an upload leaves no photo file without a row, once
the periodic sweep (sent by a real `celery beat`, run by a real worker) has run."""

import contextlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import ROOT, BeatProcess, WorkerProcess, free_port, wait_until

pytestmark = pytest.mark.integration

SETUP = """
from datetime import date
from accounts.services import issue_token
from analytics.models import Classroom, Consent, Session
from django.contrib.auth import get_user_model
user = get_user_model().objects.create_user("teacher")
classroom = Classroom.objects.create(owner=user, name="5B")
Consent.objects.create(classroom=classroom, obtained_from="parents", method="written",
                       obtained_on=date(2026, 1, 1))
print(Session.objects.create(classroom=classroom, title="Maths").pk, issue_token(user, "t")[1])
"""


def _noise_jpeg(seed: int) -> bytes:
    """About 200 KB that a zip or JPEG cannot squeeze: 100 of them are spooled to disk."""
    pixels = np.random.default_rng(seed).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _serve(env, port, log):
    return subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code > 0
    except requests.RequestException:
        return False


def test_killing_the_web_process_mid_upload_leaves_no_file_without_a_row(tmp_path):
    var, spool = tmp_path / "var", tmp_path / "tmp"
    spool.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"CELERY_BROKER_URL", "DATABASE_URL"}},
        "DEBUG": "true",
        "EDUMOOD_VAR_DIR": str(var),
        "TMPDIR": str(spool),  # where Django would spool request bodies without its own folder
        "EDUMOOD_UPLOAD_LEFTOVER_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    made = subprocess.run(
        [*manage, "shell", "-c", SETUP], cwd=ROOT, env=env, check=True, timeout=120,
        capture_output=True, text=True,
    )  # fmt: skip
    session_id, token = made.stdout.split()[-2:]
    # 100 different photos: copies of one would be stored once (a session's duplicates are not).
    files = [("image", (f"p{i}.jpg", _noise_jpeg(i), "image/jpeg")) for i in range(100)]

    port, log = free_port(), (tmp_path / "web.log").open("wb")
    base = f"http://127.0.0.1:{port}"
    web = _serve(env, port, log)
    photos = var / "media" / "photos"
    try:
        wait_until(lambda: _answers(f"{base}/healthz"), 120, 0.5, "the web server to answer")

        def send():
            with contextlib.suppress(requests.ConnectionError):  # the kill ends it
                requests.post(
                    f"{base}/api/sessions/{session_id}/photos/",
                    files=files,
                    headers={"Authorization": f"Token {token}"},
                    timeout=120,
                )

        upload = threading.Thread(target=send, daemon=True)
        upload.start()
        # Killed as soon as the first photo file appears: mid-way through storing the batch.
        wait_until(lambda: photos.is_dir() and _files(photos), 120, 0.002, "storing to start")
        os.kill(web.pid, signal.SIGKILL)
        web.wait(10)
        upload.join(30)
        left = _files(photos) + _files(spool) + _files(var / "uploads")
        assert left, "the kill came after the request ended: nothing was tested"
    finally:
        if web.poll() is None:  # the test failed before its kill
            os.killpg(web.pid, signal.SIGKILL)
            web.wait(10)
        log.close()

    def rows() -> set[str]:
        with sqlite3.connect(var / "edumood.sqlite3") as db:
            return {name for (name,) in db.execute("SELECT image FROM analytics_photo")}

    def swept() -> bool:
        stored = {f"photos/{name}" for name in _files(photos)}
        return stored == rows() and not _files(var / "uploads")

    assert not swept()
    # The deployment's periodic work: beat sends the sweep at its start, a worker runs it (on
    # the embedded broker under var/, as `make run` has it).
    worker = WorkerProcess("filesystem://", tmp_path / "worker.log")
    worker.env = {**env, "OMP_NUM_THREADS": "1"}  # the web's: its database and broker
    beat = BeatProcess(env, tmp_path / "beat.log")
    try:
        worker.start()
        beat.start()
        wait_until(swept, 60, 0.5, "the sweep to remove what the upload left")
    finally:
        beat.stop()
        worker.stop()
    assert _files(spool) == []  # Django spooled nothing outside FILE_UPLOAD_TEMP_DIR
