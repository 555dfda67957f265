"""Run the web server and a Celery worker (both queues) together; Ctrl-C stops both."""

import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start the web server and a Celery worker for both queues, and stop both together."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, host, port, concurrency, **options):
        python = sys.executable
        worker = [
            python, "-m", "celery", "-A", "edumood_site", "worker",
            "-Q", "inference,training", "-c", str(concurrency),
            "-n", f"edumood-{port}@%h", "--loglevel", "INFO",
        ]  # fmt: skip
        web = [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"]
        processes = [subprocess.Popen(worker), subprocess.Popen(web)]
        self.stdout.write(
            self.style.SUCCESS(
                f"EduMood is running on http://{host}:{port}/ (web server + worker). "
                "Log in with the admin account printed at first start. Ctrl-C stops both."
            )
        )
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(p.poll() is None for p in processes):
                time.sleep(0.5)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.stdout.write("Stopped the web server and the worker.")
        if not stopping:
            sys.exit(1)  # one of them died on its own: say so with the exit code
