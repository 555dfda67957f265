"""Fixtures shared by the whole suite: the shared data folder, eager Celery, real services."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import kombu.pools
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared research data folder, or a skip when this machine does not have it."""
    path = Path(os.environ.get("EDUMOOD_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not (path / "fer2013").is_dir():
        pytest.skip(f"shared data not found at {path} (set EDUMOOD_DATA_DIR)")
    return path


@pytest.fixture(autouse=True)
def fast_and_quiet(settings):
    """One torch thread (the tests' models are tiny and the CPUs shared), a cheap hasher.

    Jobs in eager tests run inside the test's transaction; a heartbeat thread writing through
    its own connection would wait on that transaction's SQLite lock, so it must not fire
    mid-test. Worker subprocesses get their own stale limit from worker_factory.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EDUMOOD_JOB_STALE_SECONDS = settings.EDUMOOD_PHOTO_STALE_SECONDS = 3600
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fresh_health_check():
    """/healthz shares its broker check for a few seconds per process: not across tests."""
    from edumood_site.views import broker_and_workers

    broker_and_workers.result = None


@pytest.fixture
def eager_celery():
    """Run tasks in-process: for unit tests of the task code paths, not of the worker."""
    from edumood_site.celery import app

    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")


def concurrent_gets(url: str, count: int, timeout: float) -> tuple[list, float]:
    """GET `url` from `count` threads at once, each on its own connection: (the status code
    or the exception's name of each, the seconds they took together)."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    def get(_):
        try:
            return requests.get(url, timeout=timeout).status_code
        except requests.RequestException as exc:
            return type(exc).__name__

    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(get, range(count)))
    return answers, time.monotonic() - started


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free loopback port, for the whole session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (.ci/run installs it with apt-get)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def answers():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_until(answers, 10, message="redis-server to answer")
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server on a free loopback port, for the whole session (tests/s3.py)."""
    from tests.s3 import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, settings, tmp_path):
    """Stored files in a fresh private bucket of the loopback S3 server, configured as
    EDUMOOD_STORAGE=s3 configures them; MEDIA_ROOT is an empty folder that must stay empty.
    Request it before fixtures that store files (model_version). Yields (server, bucket)."""
    from edumood_site.settings import s3_storage

    bucket = s3_server.bucket()
    env = s3_server.env(bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket=bucket, endpoint_url=env["EDUMOOD_S3_ENDPOINT_URL"],
            access_key=env["EDUMOOD_S3_ACCESS_KEY_ID"],
            secret_key=env["EDUMOOD_S3_SECRET_ACCESS_KEY"], region=env["EDUMOOD_S3_REGION"],
            addressing_style=env["EDUMOOD_S3_ADDRESSING_STYLE"],
        ),
    }  # fmt: skip
    settings.MEDIA_ROOT = media = tmp_path / "unused-media"
    yield s3_server, bucket
    # A fixture requested later (model_version) may have pointed MEDIA_ROOT elsewhere.
    roots = {media, Path(settings.MEDIA_ROOT)}
    leftovers = sorted(str(p) for root in roots if root.exists() for p in root.rglob("*"))
    assert leftovers == [], "a file was written to local media while storage is the bucket"


class CeleryProcess:
    """A real `celery` subprocess (a worker, beat) in its own process group, started with
    `env`; `start()` waits until its log shows `READY`."""

    READY = b""

    def __init__(self, env: dict, log_path: Path):
        self.env, self.log_path = env, log_path
        self.process = None

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def start(self, ready_timeout: float = 60):
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "edumood_site", *self.arguments()],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_until(
            lambda: self.READY in self.log_path.read_bytes() or self.process.poll() is not None,
            ready_timeout,
            message=f"celery {self.arguments()[0]} to start",
        )
        if self.process.poll() is not None:
            raise AssertionError(f"exited early:\n{self.log_path.read_text()[-3000:]}")
        return self

    def kill(self):
        """SIGKILL the process and its children at once, as a crash or OOM would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


class WorkerProcess(CeleryProcess):
    """A real `celery worker` (every queue) against the test database and a given broker."""

    READY = b"ready."

    def __init__(self, broker_url: str, log_path: Path, stale_seconds: int = 60):
        from django.conf import settings

        env = {
            **os.environ,
            "DEBUG": "true",
            "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}",
            "CELERY_BROKER_URL": broker_url,
            "CELERY_VISIBILITY_TIMEOUT": "5",
            "EDUMOOD_JOB_STALE_SECONDS": str(stale_seconds),
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",  # tiny test models on shared CPUs: threads only contend
        }
        super().__init__(env, log_path)

    def arguments(self) -> list[str]:
        from edumood_site.celery import QUEUES

        return [
            "worker", "-Q", ",".join(QUEUES), "-c", "1", "-n", f"test-{os.getpid()}@%h",
            "-l", "INFO",
        ]  # fmt: skip


class BeatProcess(CeleryProcess):
    """A real `celery beat`, usually with a WorkerProcess's environment: it sends the periodic
    sweeps (settings.CELERY_BEAT_SCHEDULE) to that broker, each at once, then at its interval.
    Started once it sent the first."""

    READY = b"Sending due task"

    def arguments(self) -> list[str]:
        return ["beat", "-l", "INFO"]


class WebProcess:
    """A real `manage.py runserver` (threaded, as `make run` serves) against the test database
    and the broker of a WorkerProcess, in its own process group."""

    def __init__(self, worker: WorkerProcess, log_path: Path):
        self.env, self.log_path = worker.env, log_path
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = None

    def start(self, ready_timeout: float = 120) -> "WebProcess":
        import requests

        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", self.url.split("//")[1], "--noreload"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

        def answers():
            try:
                return requests.get(f"{self.url}/login/", timeout=5).status_code == 200
            except requests.RequestException:
                return self.process.poll() is not None

        wait_until(answers, ready_timeout, 0.5, message="the web server to answer")
        if self.process.poll() is not None:
            raise AssertionError(f"web server exited:\n{self.log_path.read_text()[-3000:]}")
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def celery_broker(redis_url):
    """Point this process's Celery app at the real Redis broker for one test."""
    from edumood_site.celery import app

    def use(broker_url, transport_options):
        app.conf.broker_url = broker_url
        app.conf.broker_transport_options = transport_options
        # Drop cached connection pools (kombu keeps a global registry of them) so the next
        # send opens a connection to the new broker.
        kombu.pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    previous = (app.conf.broker_url, app.conf.broker_transport_options)
    use(redis_url, {"visibility_timeout": 5})
    yield redis_url
    use(*previous)


@pytest.fixture
def worker_factory(celery_broker, tmp_path):
    """Start real worker processes on the Redis broker; all are stopped after the test."""
    workers = []

    def start(**kwargs):
        worker = WorkerProcess(celery_broker, tmp_path / "worker.log", **kwargs).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def measure_on_reference(version, accuracy: float, per_class: int = 100):
    """Give a version a reference scorecard: every class right `accuracy` of the time on
    `per_class` test faces of each, its errors on the next class (an evaluation's record)."""
    from classifier.services import record_measurement
    from ml.scorecard import MeasuredOn

    n = len(version.classes)
    hits = round(accuracy * per_class)
    matrix = [[0] * n for _ in range(n)]
    for i in range(n):
        matrix[i][i], matrix[i][(i + 1) % n] = hits, per_class - hits
    measured_on = MeasuredOn("all of reference faces v1", n * per_class, True, None)
    record_measurement(version, {"confusion_matrix": matrix}, measured_on, "evaluation job #1")
    return version


@pytest.fixture
def beat_factory(tmp_path):
    """Start real `celery beat` processes beside a worker (its environment); stopped after."""
    beats = []

    def start(worker: WorkerProcess) -> BeatProcess:
        beat = BeatProcess(worker.env, tmp_path / "beat.log").start()
        beats.append(beat)
        return beat

    yield start
    for beat in beats:
        beat.stop()


@pytest.fixture
def web_factory(tmp_path):
    """Start real web servers beside a worker (same database, broker and environment)."""
    servers = []

    def start(worker: WorkerProcess) -> WebProcess:
        server = WebProcess(worker, tmp_path / "web.log").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def model_version(db, tmp_path, settings):
    """An active model version from a small untrained checkpoint with the 7 FER classes.

    Untrained weights are enough where a test checks the plumbing (rows, probabilities summing
    to one, model loaded once), not the accuracy.
    """
    import torch

    from classifier.services import promote, register_model_version
    from ml.checkpoint import new_checkpoint, save_checkpoint
    from ml.labels import FER_CLASSES
    from ml.models import build_model
    from ml.recipe import DEFAULT_ARCH, TrainConfig

    settings.MEDIA_ROOT = tmp_path / "media"
    torch.manual_seed(0)
    model = build_model(DEFAULT_ARCH, len(FER_CLASSES))
    path = tmp_path / "tiny.pt"
    checkpoint = new_checkpoint(model, list(FER_CLASSES), TrainConfig(arch=DEFAULT_ARCH))
    checkpoint["metrics"] = {"accuracy": 0.25}
    save_checkpoint(path, checkpoint)
    # Its scorecard as if evaluated on a reference set, so pages show its 25.0 % accuracy.
    return promote(measure_on_reference(register_model_version(path, name="test model"), 0.25))
