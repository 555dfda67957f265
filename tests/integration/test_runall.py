"""`make run`'s supervisor: a child that dies is started again and the other keeps serving."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from edumood_site.views import HEALTH_CHECK_SECONDS, HEALTH_FRESH_SECONDS
from tests.conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


def _children(parent: int) -> dict[str, int]:
    """{"worker": pid, "web": pid} among the direct children of `parent`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        if ppid == parent:
            found["worker" if b"celery" in command else "web"] = int(entry.name)
    return found


def _health(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def test_a_dead_child_is_restarted_while_the_other_keeps_running(tmp_path):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"CELERY_BROKER_URL", "DATABASE_URL"}},
        "DEBUG": "true",
        "EDUMOOD_VAR_DIR": str(tmp_path / "var"),
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
    }
    log = (tmp_path / "runall.log").open("wb")
    runall = subprocess.Popen(
        [sys.executable, "manage.py", "runall", "--port", str(port), "--concurrency", "1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    health = f"http://127.0.0.1:{port}/healthz"
    try:
        wait_until(lambda: _health(health) == 200, 180, 1, "web server and worker to answer")
        # Static files as make run serves them: plotly's bundle compressed for a browser.
        bundle = requests.get(
            f"http://127.0.0.1:{port}/static/vendor/plotly-basic.min.js",
            headers={"Accept-Encoding": "gzip"},
            timeout=30,
            stream=True,
        )
        assert bundle.status_code == 200 and bundle.headers["Content-Encoding"] == "gzip"
        assert int(bundle.headers["Content-Length"]) < 500_000  # about 1.1 MB uncompressed
        first = _children(runall.pid)

        os.kill(first["worker"], signal.SIGKILL)  # as the OOM killer would
        killed = time.monotonic()
        # /healthz samples the worker every 5 s, and a restart can take less: watch the pid.
        wait_until(
            lambda: _children(runall.pid).get("worker") not in (None, first["worker"]),
            30,
            0.2,
            "a new worker process",
        )
        assert _children(runall.pid)["web"] == first["web"]
        # Past the last check that may have seen the old worker; then the new one must answer.
        time.sleep(
            max(0.0, killed + HEALTH_FRESH_SECONDS + HEALTH_CHECK_SECONDS - time.monotonic())
        )
        wait_until(lambda: _health(health) == 200, 180, 1, "a new worker to answer")
        second = _children(runall.pid)
        assert second["worker"] != first["worker"] and second["web"] == first["web"]

        os.kill(first["web"], signal.SIGKILL)
        wait_until(lambda: _health(health) == 200, 60, 0.5, "a new web server to answer")
        third = _children(runall.pid)
        assert third["web"] != first["web"] and third["worker"] == second["worker"]
        assert runall.poll() is None
    finally:
        runall.send_signal(signal.SIGTERM)
        try:
            code = runall.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(runall.pid, signal.SIGKILL)
            raise
        finally:
            log.close()
    output = (tmp_path / "runall.log").read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "The worker exited with code -9; restarting it" in output
    assert "The web server exited with code -9; restarting it" in output
    assert not _children(runall.pid)
