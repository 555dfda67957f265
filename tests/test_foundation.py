"""Foundation: settings helper, accounts, health check, the Job lifecycle, the ml/ boundary."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.urls import reverse

from classifier.choices import JobKind, JobStatus
from classifier.jobs import create_job, retry_job, run_job
from classifier.models import Job
from edumood_site import env
from edumood_site.work import WorkCancelled

ROOT = Path(__file__).resolve().parent.parent


def test_env_helper_casts_and_fails_loudly(monkeypatch):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env.env_bool("X_BOOL") is True
    assert env.env_int("X_INT") == 42
    assert env.env_list("X_LIST") == ["a", "b", "c"]
    assert env.env_str("X_MISSING", "fallback") == "fallback"
    monkeypatch.setenv("X_INT", "forty")
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env.env_int("X_INT")
    with pytest.raises(ImproperlyConfigured, match="X_REQUIRED is required"):
        env.env_str("X_REQUIRED")
    monkeypatch.setenv("X_CHOICE", "tpu")
    with pytest.raises(ImproperlyConfigured, match="one of"):
        env.env_choice("X_CHOICE", ("auto", "cpu", "cuda"))
    monkeypatch.setenv("X_RATE", "10/hour")
    assert env.env_rate("X_RATE") == "10/hour"
    monkeypatch.setenv("X_RATE", "ten a minute")
    with pytest.raises(ImproperlyConfigured, match="X_RATE"):
        env.env_rate("X_RATE")


def test_throttle_counters_live_in_a_cache_every_process_shares():
    # A per-process memory cache would give `gunicorn -w 4` four separate sets of counters.
    from django.core.cache import caches
    from django.core.cache.backends.db import DatabaseCache

    assert isinstance(caches["default"], DatabaseCache)


def _django(*args, **env_overrides):
    environment = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    environment.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


def test_production_settings_require_secret_key_and_pass_deploy_check():
    missing = _django("check", DEBUG="false")
    assert missing.returncode != 0
    assert "SECRET_KEY is required" in missing.stderr
    deploy = _django(
        "check", "--deploy", "--fail-level", "WARNING", DEBUG="false",
        SECRET_KEY="k" * 20 + "-Zq8#pL2$vN5@wR7!tY4%uB1^xC6&eD9*",
        ALLOWED_HOSTS="edumood.example.org",
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stderr


def test_the_renamed_log_in_limit_stops_the_start_rather_than_vanish():
    old = _django("check", DEBUG="true", EDUMOOD_LOGIN_ACCOUNT_RATE="5/hour")
    assert old.returncode != 0 and "is now EDUMOOD_LOGIN_PAIR_RATE" in old.stderr


def settings_variables() -> set[str]:
    """The environment variables edumood_site/settings.py reads (all through edumood_site.env)."""
    source = (ROOT / "edumood_site" / "settings.py").read_text()
    return set(re.findall(r"env_\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", source))


def test_the_readme_settings_table_lists_every_variable_the_settings_read():
    read = settings_variables()
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert {"SECURE_SSL_REDIRECT", "EDUMOOD_HTTPS", "DEBUG", "SECRET_KEY"} <= read
    assert sorted(name for name in read if f"`{name}`" not in table) == []


def test_env_example_lists_exactly_the_variables_the_settings_read():
    # A commented `# NAME=` line documents a variable left unset.
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert listed == settings_variables()


def test_importing_the_settings_touches_no_file_and_the_start_up_step_makes_them(tmp_path):
    var = tmp_path / "var"
    environment = {**os.environ, "DEBUG": "true", "EDUMOOD_VAR_DIR": str(var)}
    environment.pop("SECRET_KEY", None)
    imported = subprocess.run(
        [sys.executable, "-c", "import edumood_site.settings"], cwd=ROOT, env=environment,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert not var.exists()
    keys = []
    for _ in range(2):
        started = subprocess.run(
            [sys.executable, "manage.py", "check"], cwd=ROOT, env=environment,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        keys.append((var / "secret_key").read_text())
    assert keys[0] == keys[1] and len(keys[0]) >= 50  # made once, kept across starts
    assert (var / "secret_key").stat().st_mode & 0o777 == 0o600
    assert (var / "uploads").is_dir() and len(list((var / "broker").glob("*/queue"))) == 1


def test_the_readme_layout_names_every_module():
    """README's Layout is the one description of the tree: each module of the five packages is
    named in it (the app skeleton once for all apps; migrations and __init__.py aside)."""
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    missing = [
        str(path.relative_to(ROOT))
        for package in ("ml", "edumood_site", "accounts", "classifier", "analytics")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts and path.name != "__init__.py"
        and path.name not in layout
    ]  # fmt: skip
    assert missing == []


def test_every_periodic_entry_names_a_task_the_workers_register():
    from django.conf import settings

    from edumood_site.celery import app

    app.loader.import_default_modules()  # the apps' tasks modules, as a worker's start loads them
    entries = {name: entry["task"] for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}
    assert entries and {n: t for n, t in entries.items() if t not in app.tasks} == {}


# One spelling per word in identifiers: "analyse" as the product says it, "optimizer" and
# "summarize" as PyTorch and the code around them do.
SPELLINGS = {"analyz": "analys", "optimis": "optimiz", "summaris": "summariz"}


def test_identifiers_use_one_spelling_per_word():
    import io
    import tokenize

    offenders = []
    packages = ("ml", "edumood_site", "accounts", "classifier", "analytics", "benchmarks")
    for package in (*packages, "scripts", "tests"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
            for token in tokens:
                if token.type != tokenize.NAME:
                    continue
                for wrong, right in SPELLINGS.items():
                    if wrong in token.string.lower():
                        where = f"{path.relative_to(ROOT)}:{token.start[0]}"
                        offenders.append(f"{where} {token.string} ({right}...)")
    assert offenders == []


def test_ml_package_never_imports_django_or_the_apps_and_the_library_never_its_cli():
    offenders = []
    for path in (ROOT / "ml").rglob("*.py"):
        relative = path.relative_to(ROOT)
        library = relative.parts[1] not in ("cli", "__main__.py")
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
                if node.module == "ml":
                    names = [f"ml.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in {"django", "classifier", "analytics", "edumood_site"}:
                    offenders.append(f"{relative}:{node.lineno} imports {name}")
                if library and (name == "ml.cli" or name.startswith("ml.cli.")):
                    offenders.append(f"{relative}:{node.lineno} imports the command line {name}")
    assert not offenders, "\n".join(offenders)


def test_serving_does_not_load_the_training_code():
    code = "import sys, ml.predict, ml.photo; print(sorted(m for m in sys.modules if m in "
    code += "('ml.train', 'ml.augment', 'ml.cli', 'ml.fairness', 'ml.cv')))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_login_shows_navigation_and_logout_requires_post(client, django_user_model):
    django_user_model.objects.create_user("teacher", password="a-Long-pass-123")
    response = client.post(
        reverse("login"), {"username": "teacher", "password": "a-Long-pass-123"}, follow=True
    )
    assert response.status_code == 200
    assert b'aria-label="Main"' in response.content
    assert b"Log out" in response.content
    assert client.get(reverse("logout")).status_code == 405
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302


@pytest.mark.django_db
def test_bootstrap_creates_one_admin_with_a_generated_password(capsys, django_user_model):
    call_command("bootstrap")
    printed = capsys.readouterr().out
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    password = printed.split("password: ")[1].split()[0]
    assert len(password) >= 12 and admin.check_password(password)
    call_command("bootstrap")
    assert "password" not in capsys.readouterr().out
    assert django_user_model.objects.filter(is_superuser=True).count() == 1


@pytest.mark.django_db
def test_bootstrap_activates_the_shipped_model_with_its_shipped_calibration():
    import json

    from classifier.services import active_model_version
    from ml.predict import DEFAULT_CALIBRATION
    from ml.quantify import Calibration

    call_command("bootstrap")
    version = active_model_version()
    assert version.source == "shipped"
    assert version.calibration == json.loads(DEFAULT_CALIBRATION.read_text())
    assert Calibration.from_json(version.calibration).faces == 3589  # all of FER2013 val


@pytest.mark.django_db
def test_bootstrap_takes_the_password_from_the_environment(settings, capsys, django_user_model):
    settings.EDUMOOD_ADMIN_PASSWORD = "from-the-env-Pass-9"
    call_command("bootstrap")
    assert "from-the-env-Pass-9" not in capsys.readouterr().out
    assert django_user_model.objects.get(username="admin").check_password("from-the-env-Pass-9")


@pytest.mark.django_db
def test_healthz_reports_each_part(client):
    response = client.get(reverse("healthz"))
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True
    # No worker runs in this test: the check must say so rather than claim health.
    assert body["worker"]["ok"] is False
    assert response.status_code == 503 and body["ok"] is False


@pytest.mark.django_db
def test_plotly_js_is_served_locally(client):
    response = client.get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    assert b"plotly" in b"".join(response.streaming_content)[:2000].lower()


@pytest.mark.django_db
def test_job_progress_writes_are_throttled_but_forced_writes_land():
    job = Job.objects.create(kind=JobKind.DIAGNOSE)
    assert job.claim("t1")
    job.set_progress(0.25, "first", force=True)
    job.set_progress(0.5, "too soon")
    job.refresh_from_db()
    assert (job.progress, job.message) == (0.25, "first")
    job.set_progress(0.75, "forced", force=True)
    job.refresh_from_db()
    assert (job.progress, job.message) == (0.75, "forced")


@pytest.mark.django_db
def test_a_claimed_job_cannot_be_claimed_again_while_its_heartbeat_is_fresh():
    job = Job.objects.create(kind=JobKind.DIAGNOSE)
    assert job.claim("first") is True
    assert Job.objects.get(pk=job.pk).claim("second") is False
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == 1 and job.celery_task_id == "first"


@pytest.mark.django_db
def test_diagnose_job_runs_eagerly_to_success(eager_celery, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = create_job(JobKind.DIAGNOSE, {"seconds": 0.2, "size": 64})
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.progress == 1.0 and job.result["gflops"] > 0
    assert job.result["device"] == "cpu"
    assert any("Started" in line for line in job.log)


@pytest.mark.django_db
def test_terminal_jobs_are_left_alone():
    job = Job.objects.create(kind=JobKind.DIAGNOSE, status=JobStatus.SUCCEEDED, result={"x": 1})
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 0 and job.result == {"x": 1}


@pytest.fixture
def handler(monkeypatch):
    """A kind of job for one test only, in the job table (removed from it afterwards)."""
    from classifier.jobs import JOBS, JobType

    def register(kind):
        def add(func):
            monkeypatch.setitem(JOBS, kind, JobType(func, "training"))
            return func

        return add

    return register


@pytest.mark.django_db
def test_handler_errors_fail_the_job_with_the_reason(handler):
    @handler("test-broken")
    def broken(job):
        raise ValueError("the dataset has one class")

    job = Job.objects.create(kind="test-broken")
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "ValueError: the dataset has one class" in job.error


@pytest.mark.django_db
def test_cancel_stops_a_running_job_and_keeps_partial_results(handler):
    @handler("test-cancellable")
    def cancellable(job):
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)  # as the API would
        if job.should_stop():
            raise WorkCancelled({"epochs_done": 1})
        return {"epochs_done": 2}

    job = Job.objects.create(kind="test-cancellable")
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.result == {"epochs_done": 1}


@pytest.mark.django_db
def test_cancelling_a_queued_job_ends_it_at_once_and_retry_copies_params(
    django_capture_on_commit_callbacks, eager_celery, django_user_model
):
    user = django_user_model.objects.create_user("admin2", is_staff=True)
    job = Job.objects.create(kind=JobKind.DIAGNOSE, params={"seconds": 0.1, "size": 32})
    job.request_cancel()
    assert job.status == JobStatus.CANCELLED
    with django_capture_on_commit_callbacks(execute=True):
        again = retry_job(job, user=user)
    again.refresh_from_db()
    assert again.retry_of == job and again.requested_by == user
    assert again.params["seconds"] == 0.1 and again.status == JobStatus.SUCCEEDED


def test_each_queue_has_its_own_route_so_gpu_workers_only_get_training_work():
    from edumood_site.celery import app

    for name in ("inference", "training"):
        queue = app.amqp.queues[name]
        assert (queue.exchange.name, queue.routing_key) == (name, name)
    assert app.conf.task_acks_late and app.conf.worker_prefetch_multiplier == 1


@pytest.mark.django_db
def test_a_stale_running_job_is_requeued_once_and_failed_after_too_many_attempts(settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.EDUMOOD_JOB_STALE_SECONDS = 60
    long_ago = timezone.now() - timedelta(minutes=10)
    stale = Job.objects.create(
        kind=JobKind.DIAGNOSE, params={"queue": "training"}, status=JobStatus.RUNNING,
        heartbeat_at=long_ago, attempts=1,
    )  # fmt: skip
    exhausted = Job.objects.create(
        kind=JobKind.DIAGNOSE, status=JobStatus.RUNNING, heartbeat_at=long_ago, attempts=3
    )
    fresh = Job.objects.create(
        kind=JobKind.DIAGNOSE, status=JobStatus.RUNNING, heartbeat_at=timezone.now(), attempts=1
    )
    assert Job.recover_abandoned() == 2
    assert Job.recover_abandoned() == 0  # a second sweep finds nothing left to requeue
    for job in (stale, exhausted, fresh):
        job.refresh_from_db()
    assert stale.status == JobStatus.QUEUED
    assert exhausted.status == JobStatus.FAILED and "after 3 attempts" in exhausted.error
    assert fresh.status == JobStatus.RUNNING


@pytest.mark.django_db
def test_the_cancel_flag_is_read_at_most_about_once_a_second(django_assert_max_num_queries):
    job = Job.objects.create(kind=JobKind.DIAGNOSE)
    with django_assert_max_num_queries(1):
        assert not any(job.should_stop() for _ in range(500))  # as a loop between batches


def test_services_enqueue_by_task_name_and_never_import_tasks():
    """Tasks call services; services send task names (edumood_site.work.enqueue)."""
    offenders = []
    for app in ("classifier", "analytics"):
        for path in [*(ROOT / app).glob("services*.py"), *(ROOT / app).glob("services/*.py")]:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("tasks"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders


@pytest.mark.django_db
def test_jobs_and_photos_share_one_lifecycle():
    from analytics.models import Photo
    from edumood_site.celery import app
    from edumood_site.work import BackgroundWork

    assert issubclass(Job, BackgroundWork) and issubclass(Photo, BackgroundWork)
    assert {Job.TASK, Photo.TASK} <= set(app.tasks)


@pytest.mark.django_db
def test_a_job_run_that_lost_its_claim_does_not_close_the_job():
    """finish and fail write only while the claim they ran under is the row's (issue 24, 5)."""
    job = Job.objects.create(kind=JobKind.DIAGNOSE)
    assert job.claim("first")
    Job.objects.filter(pk=job.pk).update(attempts=2)  # taken over by a second delivery
    job.finish({"gflops": 1.0})
    job.fail("late")
    job.refresh_from_db()
    assert (job.status, job.result, job.error) == (JobStatus.RUNNING, None, "")
    job.finish({"gflops": 2.0})  # the holder of the claim (attempts 2) closes it
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, {"gflops": 2.0})


@pytest.mark.django_db(transaction=True)
def test_a_progress_write_waits_out_a_database_lock_instead_of_failing_the_job():
    """A lock held past SQLite's timeout answered "database is locked" to a training job's
    progress write, which failed the job (issue 24, item 5): it waits and writes again."""
    import sqlite3
    import threading

    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's database-wide lock")
    job = Job.objects.create(kind=JobKind.DIAGNOSE)
    assert job.claim("t")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 100")  # the 30 s timeout, in short
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None,
                            check_same_thread=False)  # fmt: skip
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writing for a long time
        threading.Timer(1.0, lambda: other.execute("COMMIT")).start()
        job.set_progress(0.5, "half way", force=True)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 30000")
    job.refresh_from_db()
    other.close()
    assert (job.progress, job.message, job.status) == (0.5, "half way", JobStatus.RUNNING)


@pytest.mark.django_db
def test_a_queued_job_whose_message_was_lost_is_sent_again_after_the_bound(
    settings, django_capture_on_commit_callbacks, eager_celery
):
    from datetime import timedelta

    from django.utils import timezone

    settings.EDUMOOD_RESEND_SECONDS = 60
    lost = Job.objects.create(
        kind=JobKind.DIAGNOSE, params={"queue": "training", "seconds": 0.1, "size": 32},
        sent_at=timezone.now() - timedelta(seconds=61),
    )  # fmt: skip
    waiting = Job.objects.create(kind=JobKind.DIAGNOSE, sent_at=timezone.now())
    assert Job.sweep() == 1
    lost.refresh_from_db(), waiting.refresh_from_db()
    assert lost.status == JobStatus.SUCCEEDED and lost.attempts == 1
    assert waiting.status == JobStatus.QUEUED


@pytest.mark.django_db
def test_health_checks_share_one_broker_check_for_a_few_seconds(client, django_user_model):
    """Anyone may call /healthz: a burst costs one broker connection and ping, not one each."""
    from edumood_site.views import broker_and_workers

    assert client.get(reverse("healthz")).status_code == 503  # no worker runs here
    checked_at = broker_and_workers.at
    for _ in range(5):
        assert client.get(reverse("healthz")).json()["worker"] == {"ok": False}
    assert broker_and_workers.at == checked_at
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    staff = client.get(reverse("healthz")).json()
    assert staff["worker"]["error"] == "RuntimeError: no worker answered a ping within 1 s"
