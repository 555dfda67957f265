"""Bounded fuzz run of the REST API against its own OpenAPI schema (schemathesis), on loopback.

    python scripts/fuzz_api.py [--max-examples 15] [--budget 75]     (`make fuzz`)

Starts a throwaway instance (SQLite, media, broker and secret key in a temporary folder;
no worker, so queued analyses and jobs simply wait), seeds a teacher's classroom, consent,
session and photo and an admin's dataset through the API, then runs schemathesis once as the
teacher and once as the admin (token auth), each for at most `--budget` seconds. Fails (exit 1)
when any request got a 5xx, listing the endpoint, the status and the server's traceback, and
schemathesis' reproduction (a curl command with the payload).
"""

import argparse
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SCHEMATHESIS = str(Path(PYTHON).with_name("st"))
# Revoking the fuzzing token would turn the rest of the run into 401s.
EXCLUDED_OPERATIONS = ["auth_tokens_destroy"]
SERVER_ERROR = re.compile(r'"(?P<request>[A-Z]+ \S+) HTTP/1\.[01]" (?P<status>5\d\d) ')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env, *args) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(buffer, "PNG")
    return buffer.getvalue()


def dataset_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label, shade in (("happy", 200), ("sad", 60)):
            for index in range(4):
                image = io.BytesIO()
                Image.new("L", (48, 48), shade + index).save(image, "PNG")
                archive.writestr(f"{label}/{index}.png", image.getvalue())
    return buffer.getvalue()


def seed(base: str, teacher: str, admin: str) -> None:
    """Objects for the fuzzer's ids to hit (small ids: ids are generated near zero)."""

    def call(token, method, path, expected, **kwargs):
        response = requests.request(
            method, base + path, headers={"Authorization": f"Token {token}"}, timeout=60, **kwargs
        )
        if response.status_code != expected:
            sys.exit(f"seeding {method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    for name in ("Maths 7b", "History 9a"):
        classroom = call(
            teacher, "POST", "/api/classrooms/", 201, json={"name": name, "subject": "Maths"}
        )["id"]
        consent = {"obtained_from": "Parents", "method": "written", "obtained_on": "2024-09-02"}
        call(teacher, "POST", f"/api/classrooms/{classroom}/consent/", 201, json=consent)
        session = {
            "classroom": classroom,
            "title": "Fractions",
            "started_at": "2024-10-01T09:00:00Z",
            "kind": "in_person",
        }
        session_id = call(teacher, "POST", "/api/sessions/", 201, json=session)["id"]
        files = [("image", (f"photo{i}.png", png((40 * i, 90, 60)), "image/png")) for i in (1, 2)]
        call(teacher, "POST", f"/api/sessions/{session_id}/photos/", 202, files=files)
    call(
        admin,
        "POST",
        "/api/datasets/",
        202,
        data={"name": "tiny"},
        files={"file": ("tiny.zip", dataset_zip(), "application/zip")},
    )


def wait_for(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit("the server exited during start-up; see its log above")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    sys.exit(f"{url} did not answer within {timeout:.0f}s")


def fuzz(schema_url, token, role, args, report_dir) -> tuple[int, str]:
    command = [
        SCHEMATHESIS, "run", schema_url,
        "--checks", "not_a_server_error",
        "--header", f"Authorization: Token {token}",
        "--max-examples", str(args.max_examples),
        "--max-time", str(args.budget),
        "--workers", "1",
        "--seed", str(args.seed),
        "--request-timeout", "30",
        "--generation-database", "none",
        "--no-color",
        "--report", "junit",
        "--report-junit-path", str(report_dir / f"{role}.xml"),
    ]  # fmt: skip
    for operation_id in EXCLUDED_OPERATIONS:
        command += ["--exclude-operation-id", operation_id]
    try:
        # The hard limit backs up --max-time, which a single slow operation can overrun.
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.budget + 60, cwd=ROOT
        )
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout
        return 124, f"{output or ''}\nschemathesis ran past {args.budget + 60}s and was stopped"
    return done.returncode, done.stdout + done.stderr


def server_errors(log: str) -> list[str]:
    """5xx lines of the server log, each with the traceback Django logged before it."""
    found = []
    lines = log.splitlines()
    for index, line in enumerate(lines):
        match = SERVER_ERROR.search(line)
        if not match:
            continue
        start = index
        while start > 0 and not lines[start - 1].startswith(("Internal Server Error", "[")):
            start -= 1
        context = lines[max(start - 1, 0) : index]
        cause = next(
            (c for c in reversed(context) if re.match(r"\w+(\.\w+)*(Error|Exception)", c)), ""
        )
        found.append(f"{match['status']} {match['request']}  {cause}".rstrip())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=15, help="per operation")
    parser.add_argument("--budget", type=int, default=75, help="seconds per role")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="edumood-fuzz-"))
    env = {
        **os.environ,
        "DEBUG": "true",
        "SECRET_KEY": "fuzz-only-not-secret",
        "EDUMOOD_VAR_DIR": str(tmp / "var"),
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp / "media"),
        "CELERY_BROKER_URL": "filesystem://",
        "EDUMOOD_ADMIN_PASSWORD": "fuzz-admin-password",
        # Throttles would answer 429 before the code under test runs.
        "EDUMOOD_TOKEN_RATE": "100000/min",
        "EDUMOOD_UPLOAD_RATE": "100000/min",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    manage(env, "migrate", "--noinput")
    manage(env, "bootstrap")
    teacher = manage(env, "issue_token", "teacher", "--create", "--name", "fuzz")
    admin = manage(env, "issue_token", "admin", "--name", "fuzz")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    failed = False
    try:
        wait_for(f"{base}/api/schema/", server)
        seed(base, teacher, admin)
        for role, token in (("teacher", teacher), ("admin", admin)):
            started = time.monotonic()
            code, output = fuzz(f"{base}/api/schema/", token, role, args, tmp)
            summary = [line for line in output.splitlines() if line.strip()][-25:]
            print(f"--- schemathesis as {role}: exit {code} in {time.monotonic() - started:.0f}s")
            print("\n".join(summary))
            if code != 0:
                failed = True
                (tmp / f"{role}.out").write_text(output)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
    errors = server_errors(log_path.read_text())
    requests_served = sum(1 for line in log_path.read_text().splitlines() if 'HTTP/1.1"' in line)
    print(f"--- server: {requests_served} requests, {len(errors)} with a 5xx")
    for error in errors:
        print("  ", error)
    if errors or failed:
        print(f"Logs and schemathesis output kept in {tmp}")
        return 1
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
