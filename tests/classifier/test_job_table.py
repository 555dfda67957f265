"""The job table (classifier/jobs.py): every kind of job in it once, on a queue the workers
consume, and its options the fields of its form and of the API's params schema."""

import pytest

from classifier.api.serializers import JOB_PARAMS
from classifier.choices import JobKind, JobStatus
from classifier.forms import JOB_FORMS
from classifier.jobs import JOBS, create_job, run_job
from classifier.management.commands.runall import celery_commands
from edumood_site.celery import QUEUES
from ml.options import options_of
from ml.recipe import TrainConfig


def test_every_kind_of_job_has_one_entry_on_a_queue_the_workers_consume():
    # A dict holds a kind once; ruff (F601) refuses a kind written twice in its literal.
    assert sorted(JOBS) == sorted(JobKind.values)
    worker = celery_commands("python", 8000, 2)["worker"]
    consumed = set(worker[worker.index("-Q") + 1].split(","))
    assert consumed == set(QUEUES)  # `make run`'s one worker takes every queue
    for kind, job_type in JOBS.items():
        assert job_type.queue in QUEUES, kind
        assert callable(job_type.handler), kind


@pytest.mark.parametrize("kind", sorted(JOB_FORMS))
def test_a_job_forms_and_the_apis_option_fields_are_its_kinds_options_in_the_table(kind):
    job_type = JOBS[kind]
    names = {o.name for options in job_type.options for o in options_of(options)}
    if job_type.recipe_overrides:
        names |= {o.name for o in options_of(TrainConfig)}
    form_fields, schema_fields = set(JOB_FORMS[kind].base_fields), set(JOB_PARAMS[kind]().fields)
    assert names <= form_fields and names <= schema_fields
    # What else a form has names rows (versions) or says what to keep, never an option.
    others = form_fields - names
    assert all(name.endswith("version") or name in {"name", "keep_if_cancelled"} for name in others)
    assert schema_fields == form_fields


@pytest.mark.django_db
def test_a_job_is_created_on_its_kinds_queue_and_run_by_its_kinds_handler(monkeypatch):
    from dataclasses import replace

    ran = []
    monkeypatch.setitem(JOBS, JobKind.EVALUATE, replace(JOBS[JobKind.EVALUATE], handler=ran.append))
    job = create_job(JobKind.EVALUATE, {"model_version": 1, "dataset_version": 1})
    assert job.queue == JOBS[JobKind.EVALUATE].queue == job.params["queue"]
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and [j.pk for j in ran] == [job.pk]
