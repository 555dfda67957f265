"""Run the web server, a Celery worker (both queues) and Celery beat (the periodic sweeps)
together, restarting any that dies.

Static files are collected (with gzip copies) first and served by whitenoise, compressed, as
in production: runserver's own static handler sends plotly's 1-5 MB bundles uncompressed.
Ctrl-C (or SIGTERM) stops them all.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from django.core.management import call_command
from django.core.management.base import BaseCommand

from edumood_site.celery import QUEUES

# A child that dies is started again after a pause that doubles with each quick death (1 s,
# 2 s, 4 s ... up to a minute), so a child that cannot start does not spin the CPU; one that
# ran for STABLE_SECONDS starts from the shortest pause again.
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
STABLE_SECONDS = 60.0


@dataclass
class Child:
    """One supervised process: its command, the running process and its restart schedule."""

    name: str
    command: list[str]
    env: dict | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None  # set while it waits to be started again
    backoff: float = FIRST_BACKOFF_SECONDS

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env)
        self.started_at = time.monotonic()
        self.restart_at = None

    def schedule_restart(self, now: float) -> float:
        """After an exit: when to start again (sooner if it had run for a while)."""
        if now - self.started_at >= STABLE_SECONDS:
            self.backoff = FIRST_BACKOFF_SECONDS
        delay = self.backoff
        self.backoff = min(self.backoff * 2, MAX_BACKOFF_SECONDS)
        self.restart_at = now + delay
        return delay

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def celery_commands(python: str, port: int, concurrency: int) -> dict[str, list[str]]:
    """The worker (every queue) and beat (the periodic sweeps of settings.CELERY_BEAT_SCHEDULE;
    one beat per database and broker) that run beside the web server."""
    celery = [python, "-m", "celery", "-A", "edumood_site"]
    return {
        "worker": [
            *celery, "worker", "-Q", ",".join(QUEUES), "-c", str(concurrency),
            "-n", f"edumood-{port}@%h", "--loglevel", "INFO",
        ],
        "beat": [*celery, "beat", "--loglevel", "INFO"],
    }  # fmt: skip


class Command(BaseCommand):
    help = (
        "Start the web server, a Celery worker for both queues and Celery beat; restart any "
        "one that dies (with backoff) while the others keep running; stop them together."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, host, port, concurrency, **options):
        python = sys.executable
        call_command("collectstatic", interactive=False, verbosity=0)
        web = [python, "manage.py", "runserver", f"{host}:{port}", "--noreload", "--nostatic"]
        web_env = {**os.environ, "EDUMOOD_STATIC_COLLECTED": "true"}
        celery = celery_commands(python, port, concurrency)
        children = [
            Child("worker", celery["worker"]),
            Child("beat", celery["beat"]),
            Child("web server", web, web_env),
        ]
        for child in children:
            child.start()
        self.stdout.write(
            self.style.SUCCESS(
                f"EduMood is running on http://{host}:{port}/ (web server, worker, beat). "
                "Log in with the admin account printed at first start. Ctrl-C stops them all."
            )
        )
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                self._supervise(children)
                time.sleep(0.5)
        finally:
            for child in children:
                child.stop()
            for child in children:
                child.wait_stopped(timeout=20)
        self.stdout.write("Stopped the web server, the worker and beat.")

    def _supervise(self, children: list[Child]) -> None:
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start()
                    self.stdout.write(f"Restarted the {child.name} (pid {child.process.pid}).")
            elif child.process.poll() is not None:
                delay = child.schedule_restart(now)
                self.stderr.write(
                    f"The {child.name} exited with code {child.process.returncode}; "
                    f"restarting it in {delay:.0f} s. The others keep running."
                )
