"""The README's production layout on loopback: PostgreSQL, Redis, gunicorn, a worker per queue
and Celery beat.

`ProdStack` starts a throwaway PostgreSQL cluster (initdb in a temporary folder; as root it
runs as the `postgres` system user, which refuses nothing else) and a redis-server on free
loopback ports, migrates, collects static files, creates the admin (which registers the
shipped model), starts `gunicorn -w 2` with DEBUG off, one Celery worker per queue and one
`celery beat` (the periodic sweeps), and stops and removes all of it on `stop()`. Used by
tests/prod (`make test-prod`) and benchmarks/prod_load.py. Needs the Debian packages
postgresql and redis-server (`make test-prod` installs them when it runs as root).

With `storage="s3"` it is the layout of several hosts (deploy/docker-compose.yml): an S3 server
on loopback (moto's, tests/s3.py) holds every stored file in a private bucket, and the web
processes and each worker get their own empty var/ and media folders, as on separate machines:
they share nothing but PostgreSQL, Redis and the bucket.
"""

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from tests.conftest import ROOT, free_port, wait_until
from tests.s3 import S3Server

PYTHON = sys.executable
ADMIN_PASSWORD = "Prod-stack-admin-" + secrets.token_urlsafe(8)
# Short enough for a test to see a killed worker's job come back within a minute.
STALE_SECONDS = 10
VISIBILITY_TIMEOUT = 20
# The machines of the layout: the web processes (and manage.py), and a worker per queue.
HOSTS = ("web", "worker-inference", "worker-training", "beat")


def postgres_bin(tool: str) -> Path:
    """A PostgreSQL server tool from the newest installed Debian version."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(
            f"PostgreSQL's {tool} not found: apt-get install postgresql (make test-prod does)"
        )
    return versions[-1]


class Service:
    """A long-running child in its own process group, so stopping it stops its children."""

    def __init__(self, name: str, command: list[str], log: Path, env=None):
        self.name, self.command, self.log, self.env = name, command, log, env
        self.process = None

    def start(self) -> "Service":
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the process and its children at once, as a crash or the OOM killer would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def tail(self, chars: int = 3000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n{text[-chars:]}"


class ProdStack:
    """Start with `start()`, always `stop()` (or `with ProdStack() as stack:`); `url`, `env` and
    the services are attributes."""

    def __init__(
        self, extra_env: dict | None = None, inference_concurrency: int = 2, storage="local"
    ):
        self.work = Path(tempfile.mkdtemp(prefix="edumood-prod-"))
        self.logs = self.work / "logs"
        self.logs.mkdir()
        self.extra_env = extra_env or {}
        self.inference_concurrency = inference_concurrency
        self.storage = storage
        self.s3: S3Server | None = None
        self.bucket = ""
        self.services: dict[str, Service] = {}
        self.pg_dir: Path | None = None
        self.pg_user = None
        self.url = ""
        self.env: dict = {}

    # --- the parts ---------------------------------------------------------------------------

    def _as_postgres(self) -> dict:
        """PostgreSQL refuses to run as root: run its tools as the `postgres` system user."""
        if os.geteuid() != 0:
            return {}
        return {"user": "postgres"}

    def _start_postgres(self) -> str:
        self.pg_dir = Path(tempfile.mkdtemp(prefix="edumood-pg-"))
        password = secrets.token_urlsafe(16)
        (self.pg_dir / "pw").write_text(password)
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            for path in (self.pg_dir, self.pg_dir / "pw"):
                os.chown(path, account.pw_uid, account.pw_gid)
        run_as = self._as_postgres()
        data = self.pg_dir / "data"
        subprocess.run(
            [postgres_bin("initdb"), "-D", data, "-U", "edumood", "--pwfile", self.pg_dir / "pw",
             "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions"],
            check=True, capture_output=True, **run_as,
        )  # fmt: skip
        port = free_port()
        # A throwaway cluster: durability settings off, as for any test database.
        options = (
            f"-h 127.0.0.1 -p {port} -k {self.pg_dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            [postgres_bin("pg_ctl"), "-D", data, "-o", options, "-l", self.pg_dir / "server.log",
             "-w", "-t", "60", "start"],
            check=True, capture_output=True, **run_as,
        )  # fmt: skip
        import psycopg

        admin = f"postgresql://edumood:{password}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE DATABASE edumood")
        return f"postgres://edumood:{password}@127.0.0.1:{port}/edumood"

    def _start_redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        port = free_port()
        redis_dir = self.work / "redis"
        redis_dir.mkdir()
        service = Service(
            "redis",
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", str(redis_dir)],
            self.logs / "redis.log",
        ).start()  # fmt: skip
        self.services["redis"] = service
        import redis

        wait_until(
            lambda: _answers(lambda: redis.Redis(port=port).ping()),
            20,
            message="redis-server to answer",
            interval=0.5,
        )
        return f"redis://127.0.0.1:{port}"

    def host_env(self, host: str) -> dict:
        """The environment of the processes of one host ("web", "worker-inference", ...): with
        a bucket, a var/ and media folder of its own (empty: nothing on its disk is shared)."""
        if self.storage == "local":
            return self.env
        folder = self.work / "hosts" / host
        return {
            **self.env,
            "EDUMOOD_VAR_DIR": str(folder / "var"),
            "MEDIA_ROOT": str(folder / "media"),
        }

    def media_files(self) -> list[str]:
        """Every file in the hosts' local media folders (none while the bucket holds them)."""
        roots = [Path(self.host_env(host)["MEDIA_ROOT"]) for host in HOSTS]
        return sorted(
            str(p) for root in roots if root.exists() for p in root.rglob("*") if p.is_file()
        )

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.host_env("web"), capture_output=True,
            text=True, stdin=subprocess.DEVNULL, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def worker(self, queue: str, concurrency: int) -> Service:
        return Service(
            f"worker-{queue}",
            [PYTHON, "-m", "celery", "-A", "edumood_site", "worker", "-Q", queue,
             "-c", str(concurrency), "-n", f"{queue}-{secrets.token_hex(3)}@%h", "-l", "INFO"],
            self.logs / f"worker-{queue}.log",
            env=self.host_env(f"worker-{queue}"),
        )  # fmt: skip

    def start_worker(self, queue: str, concurrency: int = 1) -> Service:
        """(Re)start the worker of a queue and wait until it answers a ping."""
        service = self.worker(queue, concurrency).start()
        self.services[f"worker-{queue}"] = service
        log = service.log
        start = log.stat().st_size if log.exists() else 0
        wait_until(
            lambda: b"ready." in log.read_bytes()[start:] or not service.alive(),
            180,
            message=f"the {queue} worker to start",
            interval=0.5,
        )
        if not service.alive():
            raise RuntimeError(f"the {queue} worker exited:\n{service.tail()}")
        return service

    def start_beat(self) -> Service:
        """The deployment's one beat: it sends the periodic sweeps (recovery of abandoned rows,
        lost messages, upload leftovers) that the inference worker runs."""
        service = Service(
            "beat",
            [PYTHON, "-m", "celery", "-A", "edumood_site", "beat", "-l", "INFO"],
            self.logs / "beat.log",
            env=self.host_env("beat"),
        ).start()
        self.services["beat"] = service
        wait_until(
            lambda: b"Sending due task" in service.log.read_bytes() or not service.alive(),
            60,
            message="beat to send its first sweep",
            interval=0.5,
        )
        if not service.alive():
            raise RuntimeError(f"beat exited:\n{service.tail()}")
        return service

    # --- the whole stack ---------------------------------------------------------------------

    def __enter__(self) -> "ProdStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "ProdStack":
        try:
            self._start()
        except BaseException:
            print(self.tails(), file=sys.stderr)
            self.stop()
            raise
        return self

    def _start(self) -> None:
        database_url = self._start_postgres()
        redis_url = self._start_redis()
        storage_env = {}
        if self.storage == "s3":
            self.s3 = S3Server(self.logs / "s3.log").start()
            self.bucket = self.s3.bucket()
            storage_env = self.s3.env(self.bucket)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))},
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",  # no TLS on loopback; the proxy would terminate it
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": f"{redis_url}/0",
            "CACHE_URL": f"{redis_url}/1",
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "EDUMOOD_JOB_STALE_SECONDS": str(STALE_SECONDS),
            "EDUMOOD_VAR_DIR": str(self.work / "var"),
            "MEDIA_ROOT": str(self.work / "media"),
            "EDUMOOD_DEVICE": "cpu",
            "EDUMOOD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
            **storage_env,
            **self.extra_env,
        }
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")
        self.manage("bootstrap")  # the admin account and the shipped model
        self.services["gunicorn"] = Service(
            "gunicorn",
            [PYTHON, "-m", "gunicorn", "edumood_site.wsgi", "-w", "2", "-b", f"127.0.0.1:{port}",
             "--timeout", "120", "--access-logfile", str(self.logs / "access.log"),
             # The serving process's id in each line: tests check that both workers answered.
             "--access-logformat", '%(p)s "%(r)s" %(s)s'],
            self.logs / "gunicorn.log",
            env=self.host_env("web"),
        ).start()  # fmt: skip
        self.start_worker("inference", self.inference_concurrency)
        self.start_worker("training", 1)
        self.start_beat()
        wait_until(
            lambda: _answers(lambda: requests.get(f"{self.url}/healthz", timeout=5).ok),
            120,
            message="gunicorn to answer /healthz with everything up",
            interval=0.5,
        )

    def create_users(self, specs: list[tuple[str, str | None, bool]]) -> dict[str, str]:
        """Users (name, password or None, staff) in one process; returns {name: API token}."""
        script = (
            "import json\n"
            "from django.contrib.auth import get_user_model\n"
            "from accounts.services import issue_token\n"
            "tokens = {}\n"
            f"for name, password, staff in json.loads({json.dumps(json.dumps(specs))}):\n"
            "    user = get_user_model().objects.create_user(name, password=password, "
            "is_staff=staff)\n"
            "    tokens[name] = issue_token(user, 'prod stack')[1]\n"
            "print(json.dumps(tokens))\n"
        )
        return json.loads(self.manage("shell", "-c", script).strip().splitlines()[-1])

    def admin_token(self) -> str:
        reply = requests.post(
            f"{self.url}/api/auth/token/",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            timeout=60,
        )
        reply.raise_for_status()
        return reply.json()["token"]

    def tails(self) -> str:
        logs = [service.tail() for service in self.services.values()]
        if self.s3 is not None:
            logs.append(f"--- s3 ({self.s3.log}) ---\n{self.s3.log.read_text()[-2000:]}")
        return "\n".join(logs)

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        if self.s3 is not None:
            self.s3.stop()
        if self.pg_dir is not None and (self.pg_dir / "data" / "postmaster.pid").exists():
            subprocess.run(
                [postgres_bin("pg_ctl"), "-D", self.pg_dir / "data", "-m", "immediate", "stop"],
                capture_output=True, **self._as_postgres(),
            )  # fmt: skip
        for folder in (self.pg_dir, self.work):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


def _answers(probe) -> bool:
    try:
        return bool(probe())
    except Exception:  # not up yet: connection refused, 503, ...
        return False
