"""The job table, and starting, retrying and running jobs, which read it.

`JOBS` says, for every kind of job, which function performs it, on which Celery queue, and
which options (ml/recipe.py, ml/options.py) its parameters are: the forms and the API's params
schema derive their fields from these, the handler reads the same classes. From
`POST /api/jobs/ {"kind": "audit"}` to its code is one look: `JOBS[JobKind.AUDIT]` below.
Nothing is registered by a decorator or by importing a module for its side effect.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from edumood_site.work import perform
from ml.options import AuditOptions, KFoldOptions, MitigateOptions, SplitOptions
from ml.recipe import TrainConfig

from . import handlers
from .choices import JobKind
from .datasets import DatasetImportError, import_dataset, resolve_server_folder, save_upload
from .models import AttributeSource, Dataset, Job


@dataclass(frozen=True)
class JobType:
    """How one kind of job runs: its handler, its queue and its options."""

    # Performs the job (its row claimed and kept alive by edumood_site.work.perform); what it
    # returns is the job's result, WorkCancelled ends it as cancelled, anything else fails it.
    handler: Callable[[Job], dict | None]
    # One of edumood_site.celery.QUEUES; the queue's time limit applies.
    queue: str
    # The options classes of its parameters, in the order the form shows them.
    options: tuple[type, ...] = ()
    # It retrains a model version's recipe: TrainConfig's fields are optional changes to it.
    recipe_overrides: bool = False


JOBS: dict[str, JobType] = {
    JobKind.TRAIN: JobType(handlers.train_job, "training", (TrainConfig, SplitOptions)),
    JobKind.EVALUATE: JobType(handlers.evaluate_job, "training"),
    JobKind.KFOLD: JobType(handlers.kfold_job, "training", (KFoldOptions,), recipe_overrides=True),
    JobKind.AUDIT: JobType(handlers.audit_job, "training", (AuditOptions,)),
    JobKind.MITIGATE: JobType(
        handlers.mitigate_job, "training", (MitigateOptions,), recipe_overrides=True
    ),
    # Started from a dataset upload (start_import), not from a job form.
    JobKind.IMPORT_DATASET: JobType(import_dataset, "training"),
    # Started by an operator checking a worker (params: seconds, size); no form.
    JobKind.DIAGNOSE: JobType(handlers.diagnose_worker, "training"),
}


def create_job(kind: str, params: dict | None = None, *, user=None) -> Job:
    """Create a job row on its kind's queue and send its task once the row is committed."""
    params = {"queue": JOBS[kind].queue, **(params or {})}
    job = Job.objects.create(kind=kind, params=params, requested_by=user)
    transaction.on_commit(job.enqueue)
    return job


def retry_job(job: Job, *, user=None) -> Job:
    """A new job with the same kind and parameters; the old one stays as it ended."""
    params = {k: v for k, v in job.params.items() if k != "queue"}
    new = create_job(job.kind, params, user=user)
    new.retry_of = job
    new.save(update_fields=["retry_of"])
    return new


def start_import(
    name: str,
    *,
    user=None,
    upload=None,
    folder: str = "",
    attribute_source: str = AttributeSource.ANNOTATOR,
    face_crop: str = "auto",
) -> tuple[Dataset, Job]:
    """Create (or reuse by name) a dataset and queue the job that imports one version of it."""
    if (upload is None) == (not folder):
        raise DatasetImportError("Give either a zip upload or a server folder.")
    params = {"attribute_source": attribute_source, "face_crop": face_crop}
    if upload is not None:
        params["upload"] = save_upload(upload)
    else:
        params["folder"] = str(resolve_server_folder(folder))
    with transaction.atomic():
        dataset, _ = Dataset.objects.get_or_create(name=name, defaults={"created_by": user})
        params["dataset"] = dataset.pk
        job = create_job(JobKind.IMPORT_DATASET, params, user=user)
    return dataset, job


def run_job(job_id: int, *, task_id: str = "", soft_time_limit: float | None = None) -> None:
    """Claim a job and perform it with its kind's handler; record success, failure or
    cancellation on the row."""
    perform(
        Job.objects.all(), job_id, lambda job: JOBS[job.kind].handler(job),
        claim_options={"task_id": task_id}, soft_time_limit=soft_time_limit,
    )  # fmt: skip
