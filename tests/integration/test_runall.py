"""`make run` as a school would see it (no debug output, plain http on 127.0.0.1), and its
supervisor: a child that dies is started again and the others keep serving; beat's periodic
sweep runs on its worker."""

import os
import re
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
    """{"worker": pid, "beat": pid, "web": pid} among the direct children of `parent`."""
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
            role = "web"
            if b"celery" in command:
                role = "beat" if b" beat " in command else "worker"
            found[role] = int(entry.name)
    return found


def _health(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def make_run_environment() -> dict[str, str]:
    """The variables the Makefile's `run` target exports (`run: export NAME ?= value`), so this
    starts the server as `make run` does, not as a developer's DEBUG=true would."""
    exported = re.findall(r"^run: export (\w+) \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert dict(exported).get("DEBUG") == "false", exported
    return dict(exported)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    """`manage.py runall` with make run's environment on a free port: (process, base URL, log)."""
    folder = tmp_path_factory.mktemp("runall")
    port = free_port()
    skip = {"CELERY_BROKER_URL", "DATABASE_URL", "SECRET_KEY", "DEBUG", "EDUMOOD_HTTPS"}
    env = {
        **{k: v for k, v in os.environ.items() if k not in skip},
        **make_run_environment(),
        "EDUMOOD_VAR_DIR": str(folder / "var"),
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
    }
    log_path = folder / "runall.log"
    log = log_path.open("wb")
    runall = subprocess.Popen(
        [sys.executable, "manage.py", "runall", "--port", str(port), "--concurrency", "1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _health(f"{base}/healthz") == 200, 180, 1, "web and worker to answer")
        yield runall, base, log_path
    finally:
        if runall.poll() is None:
            os.killpg(runall.pid, signal.SIGKILL)
        log.close()


def test_a_school_sees_the_sites_own_error_pages_on_plain_http(make_run):
    _, base, _ = make_run
    missing = requests.get(f"{base}/no-such-page/", timeout=30)
    text = missing.text
    assert missing.status_code == 404 and 'id="error-page"' in text and "Page not found" in text
    for debug_output in ("URLconf", "django-admin/", "api/", "Traceback", "DEBUG = True"):
        assert debug_output not in text, debug_output
    # Plain http on loopback: no redirect to https, and a log-in cookie a browser sends back.
    login = requests.get(f"{base}/login/", timeout=30, allow_redirects=False)
    assert login.status_code == 200 and "strict-transport-security" not in login.headers
    assert "csrftoken" in login.cookies and "secure" not in login.headers["Set-Cookie"].lower()
    # A form posted without its token (it expired) gets the site's page, not Django's.
    expired = requests.post(f"{base}/login/", data={"username": "a"}, timeout=30)
    assert expired.status_code == 403 and 'id="error-page"' in expired.text
    assert "CSRF verification failed" not in expired.text


def test_a_dead_child_is_restarted_while_the_others_keep_running(make_run):
    runall, base, log_path = make_run
    health = f"{base}/healthz"
    # Static files as make run serves them: plotly's bundle compressed for a browser.
    bundle = requests.get(
        f"{base}/static/vendor/plotly-basic.min.js",
        headers={"Accept-Encoding": "gzip"},
        timeout=30,
        stream=True,
    )
    assert bundle.status_code == 200 and bundle.headers["Content-Encoding"] == "gzip"
    assert int(bundle.headers["Content-Length"]) < 500_000  # about 1.1 MB uncompressed
    first = _children(runall.pid)
    assert set(first) == {"worker", "beat", "web"}

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
    time.sleep(max(0.0, killed + HEALTH_FRESH_SECONDS + HEALTH_CHECK_SECONDS - time.monotonic()))
    wait_until(lambda: _health(health) == 200, 180, 1, "a new worker to answer")
    second = _children(runall.pid)
    assert second["worker"] != first["worker"] and second["web"] == first["web"]
    assert second["beat"] == first["beat"]

    os.kill(first["web"], signal.SIGKILL)
    wait_until(lambda: _health(health) == 200, 60, 0.5, "a new web server to answer")
    third = _children(runall.pid)
    assert third["web"] != first["web"] and third["worker"] == second["worker"]
    assert runall.poll() is None

    runall.send_signal(signal.SIGTERM)
    code = runall.wait(60)
    output = log_path.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "The worker exited with code -9; restarting it" in output
    assert "The web server exited with code -9; restarting it" in output
    # Beat sent the periodic sweep (at its start, then every few seconds); a worker ran it.
    assert "Sending due task sweep-background-work" in output
    assert re.search(r"Task edumood_site\.sweep_background_work\[[^]]+\] succeeded", output)
    assert not _children(runall.pid)
