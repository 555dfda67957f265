"""Load on the production stack: many teachers uploading photos at the same moment.

    nice -n 5 .venv/bin/python benchmarks/prod_load.py [--clients 20] [--photos 5] [--budget 600]
        [--storage local,s3]

Starts the stack of tests/prod/stack.py (PostgreSQL, Redis, gunicorn -w 2 with DEBUG off, an
inference worker with -c 2, a training worker) on loopback, creates one teacher per client with
a classroom, consent and session, then every client uploads its photos at once, one request
per photo (real classroom photos from the shared data, else generated ones; `make test-prod`
runs it after the tests). Prints the upload latency (p50, p95, max), the upload errors and the
time from the first upload until every photo is analysed (done or failed), then stops the
stack. Bounded: it gives up waiting after --budget seconds. Figures are printed, not asserted.

`--storage` runs it once per storage, one stack after the other, and prints them side by side:
`local` (one MEDIA_ROOT on this disk) and `s3` (every file in a bucket of an S3 server on
loopback, each host with its own empty media folder: tests/prod/stack.py).
"""

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.prod.conftest import group_photos  # noqa: E402
from tests.prod.stack import ProdStack  # noqa: E402

TERMINAL = ("done", "failed")


def prepare(base: str, token: str) -> int:
    """A classroom with consent and a session; returns the session id."""
    headers = {"Authorization": f"Token {token}"}

    def post(path, body):
        reply = requests.post(base + path, json=body, headers=headers, timeout=60)
        reply.raise_for_status()
        return reply.json()

    classroom = post("/api/classrooms/", {"name": "Load"})["id"]
    consent = {"obtained_from": "Parents", "method": "written", "obtained_on": "2024-09-02"}
    post(f"/api/classrooms/{classroom}/consent/", consent)
    session = {"classroom": classroom, "title": "Load", "started_at": "2024-10-01T09:00Z"}
    return post("/api/sessions/", session)["id"]


def upload_all(base, token, session, photos, start: threading.Barrier) -> list[tuple]:
    """Upload one photo per request; returns (seconds, status) per request."""
    url = f"{base}/api/sessions/{session}/photos/"
    headers = {"Authorization": f"Token {token}"}
    start.wait()
    results = []
    for name, data in photos:
        began = time.perf_counter()
        try:
            status = requests.post(
                url, files=[("image", (name, data, "image/jpeg"))], headers=headers, timeout=300
            ).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        results.append((time.perf_counter() - began, status))
    return results


def analysed(base, clients) -> tuple[int, int, int]:
    """(photos analysed, photos in all, faces found) over every client's session."""
    finished = total = faces = 0
    for token, session in clients:
        reply = requests.get(
            f"{base}/api/photos/",
            params={"session": session},
            headers={"Authorization": f"Token {token}"},
            timeout=60,
        ).json()
        for photo in reply["results"]:
            total += 1
            finished += photo["status"] in TERMINAL
            faces += len(photo["faces"])
    return finished, total, faces


def measure(storage: str, args, photos) -> dict:
    """One run on a fresh stack with the given storage: its figures."""
    stack = ProdStack(storage=storage)
    try:
        stack.start()
        tokens = stack.create_users([(f"load{i}", None, False) for i in range(args.clients)])
        clients = [(token, prepare(stack.url, token)) for token in tokens.values()]
        barrier = threading.Barrier(args.clients)
        began = time.perf_counter()
        shares = [photos[i :: args.clients] for i in range(args.clients)]
        with ThreadPoolExecutor(args.clients) as pool:
            futures = [
                pool.submit(upload_all, stack.url, token, session, share, barrier)
                for (token, session), share in zip(clients, shares, strict=True)
            ]
            requests_done = [row for future in futures for row in future.result()]
        uploaded_in = time.perf_counter() - began
        deadline = began + args.budget
        while True:
            finished, total, faces = analysed(stack.url, clients)
            if finished == total or time.perf_counter() > deadline:
                break
            time.sleep(1)
        all_analysed_in = time.perf_counter() - began
    finally:
        stack.stop()

    latencies = np.array([seconds for seconds, _ in requests_done])
    return {
        "p50": np.percentile(latencies, 50),
        "p95": np.percentile(latencies, 95),
        "max": latencies.max(),
        "uploaded_in": uploaded_in,
        "errors": [status for _, status in requests_done if status != 202],
        "finished": finished,
        "total": total,
        "all_analysed_in": all_analysed_in,
        "faces": faces,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--photos", type=int, default=5, help="photos per client")
    parser.add_argument("--budget", type=float, default=600, help="seconds to wait for analysis")
    parser.add_argument(
        "--storage", default="local", help="comma-separated storages to compare: local, s3"
    )
    args = parser.parse_args()
    storages = [name.strip() for name in args.storage.split(",") if name.strip()]
    unknown = set(storages) - {"local", "s3"}
    if unknown or not storages:
        parser.error(f"--storage takes local and/or s3, not {args.storage!r}")
    photos = group_photos(args.clients * args.photos)
    source = "generated" if photos[0][0].startswith("generated") else "group-photos"
    runs = {storage: measure(storage, args, photos) for storage in storages}
    print(f"{args.clients} clients x {args.photos} photos ({source}), one upload request each:")
    print(
        f"  {'storage':8} {'upload p50':>10} {'p95':>7} {'max':>7} {'answered':>9} "
        f"{'analysed':>9} {'photos':>8} {'faces':>6}  errors"
    )
    for storage, run in runs.items():
        print(
            f"  {storage:8} {run['p50']:>8.2f} s {run['p95']:>5.2f} s {run['max']:>5.2f} s "
            f"{run['uploaded_in']:>7.1f} s {run['all_analysed_in']:>7.1f} s "
            f"{run['finished']:>3}/{run['total']:<4} {run['faces']:>6}  "
            f"{len(run['errors'])} {run['errors'][:5]}"
        )
    print(
        "  answered: all uploads answered, from the first; analysed: every photo done or "
        "failed, from the first upload (photos: those analysed within --budget)"
    )


if __name__ == "__main__":
    main()
