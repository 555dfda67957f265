"""A real Redis server and real `celery worker` processes running jobs end to end."""

import pytest

from classifier.choices import JobKind, JobStatus
from classifier.jobs import create_job
from tests.conftest import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PARTS = ("database", "broker", "worker")


def _fetch(job):
    job.refresh_from_db()
    return job


def test_a_queued_job_runs_on_a_real_worker_with_visible_progress(
    worker_factory, client, django_user_model
):
    worker_factory()
    job = create_job(JobKind.DIAGNOSE, {"seconds": 4, "size": 256})
    seen = wait_until(
        lambda: 0 < _fetch(job).progress < 1 and job.status == JobStatus.RUNNING and job.progress,
        60,
        message="progress while running",
    )
    assert 0 < seen < 1
    wait_until(lambda: _fetch(job).is_terminal, 60, message="the job to finish")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["gflops"] > 0 and job.attempts == 1

    # /healthz: anyone sees that the worker answers; only staff see its name.
    public = client.get("/healthz")
    assert public.status_code == 200
    assert public.json() == {"ok": True, **{part: {"ok": True} for part in PARTS}}
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    staff = client.get("/healthz").json()
    assert any(name.startswith("test-") for name in staff["worker"]["workers"])
    assert staff["broker"]["transport"]


def test_a_job_whose_worker_is_killed_is_run_again_and_finishes(worker_factory, beat_factory):
    worker = worker_factory(stale_seconds=3)
    beat_factory(worker)  # its sweep queues the abandoned job again
    job = create_job(JobKind.DIAGNOSE, {"seconds": 6, "size": 256})
    wait_until(lambda: _fetch(job).progress > 0.1, 60, message="the job to be under way")
    worker.kill()
    assert _fetch(job).status == JobStatus.RUNNING  # what a crash leaves behind
    worker_factory(stale_seconds=3)
    wait_until(lambda: _fetch(job).is_terminal, 90, message="the job to end after the crash")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2
    assert any("Attempt 2" in line for line in job.log)
    assert job.result["seconds"] >= 6


def test_a_job_over_its_queue_time_limit_fails_with_the_reason_and_is_not_run_again(
    worker_factory, settings
):
    settings.CELERY_TRAINING_TIME_LIMIT = 3
    worker_factory(stale_seconds=3)
    job = create_job(JobKind.DIAGNOSE, {"seconds": 60, "size": 128})
    wait_until(lambda: _fetch(job).is_terminal, 60, message="the job to be stopped")
    assert job.status == JobStatus.FAILED
    assert "time limit of 3 s" in job.error and job.attempts == 1
