"""Load on the production stack: many teachers uploading photos at the same moment.

    nice -n 5 .venv/bin/python benchmarks/prod_load.py [--clients 20] [--photos 5] [--budget 600]

Starts the stack of tests/prod/stack.py (PostgreSQL, Redis, gunicorn -w 2 with DEBUG off, an
inference worker with -c 2, a training worker) on loopback, creates one teacher per client with
a classroom, consent and session, then every client uploads its photos at once, one request
per photo (real classroom photos from the shared data, else generated ones; `make test-prod`
runs it after the tests). Prints the upload latency (p50, p95, max), the upload errors and the
time from the first upload until every photo is analysed (done or failed), then stops the
stack. Bounded: it gives up waiting after --budget seconds. Figures are printed, not asserted.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--photos", type=int, default=5, help="photos per client")
    parser.add_argument("--budget", type=float, default=600, help="seconds to wait for analysis")
    args = parser.parse_args()
    photos = group_photos(args.clients * args.photos)
    source = "generated" if photos[0][0].startswith("generated") else "group-photos"
    stack = ProdStack()
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
    errors = [status for _, status in requests_done if status != 202]
    print(f"{args.clients} clients x {args.photos} photos ({source}), one upload request each:")
    print(
        f"  upload latency: p50 {np.percentile(latencies, 50):.2f} s, "
        f"p95 {np.percentile(latencies, 95):.2f} s, max {latencies.max():.2f} s; "
        f"all uploads answered after {uploaded_in:.1f} s; errors: {len(errors)} {errors[:5]}"
    )
    state = "all analysed" if finished == total else f"only {finished}/{total} analysed (budget)"
    print(f"  {state} {all_analysed_in:.1f} s after the first upload; {faces} faces found")


if __name__ == "__main__":
    main()
