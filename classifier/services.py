"""Domain operations of the model lifecycle. Views, the API and tasks call these."""

import hashlib
import logging
import platform
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.db import connection, transaction
from django.utils import timezone

from .choices import JobKind, JobStatus
from .models import Job, ModelVersion

logger = logging.getLogger(__name__)

JOB_HANDLERS: dict[str, Callable[[Job], dict | None]] = {}


class JobCancelled(Exception):  # noqa: N818  (a signal, not an error)
    """Raised by a handler that saw the cancel flag; carries what was finished so far."""

    def __init__(self, partial_result=None):
        super().__init__("cancelled")
        self.partial_result = partial_result


def job_handler(kind: str):
    """Register the function that performs jobs of one kind."""

    def register(func):
        JOB_HANDLERS[kind] = func
        return func

    return register


# Seconds between a task's soft time limit (SoftTimeLimitExceeded: the row is closed with the
# reason) and the hard kill, which would leave the row running for the stale sweep to requeue.
HARD_LIMIT_GRACE = 30


def queue_time_limit(queue: str) -> int:
    return {
        "inference": settings.CELERY_INFERENCE_TIME_LIMIT,
        "training": settings.CELERY_TRAINING_TIME_LIMIT,
    }[queue]


def time_limit_options(queue: str) -> dict:
    """apply_async's options for a queue: its soft limit, and a hard one a grace period later."""
    limit = queue_time_limit(queue)
    return {"queue": queue, "soft_time_limit": limit, "time_limit": limit + HARD_LIMIT_GRACE}


def time_limit_message(queue: str, seconds: float | None) -> str:
    """The reason a row gets when its task hit the soft time limit it was sent with."""
    return (
        f"Stopped at the {queue} queue's time limit of {seconds or queue_time_limit(queue):g} s;"
        " raise the limit or shorten the work."
    )


def create_job(kind: str, params: dict | None = None, *, user=None, queue: str = "training") -> Job:
    """Create a job row and queue its task once the row is committed."""
    job = Job.objects.create(kind=kind, params=params or {}, requested_by=user)
    job.params.setdefault("queue", queue)
    job.save(update_fields=["params"])
    transaction.on_commit(lambda: enqueue(job))
    return job


def enqueue(job: Job) -> None:
    from .tasks import run_job

    queue = job.params.get("queue", "training")
    run_job.apply_async((job.pk,), **time_limit_options(queue))


def retry_job(job: Job, *, user=None) -> Job:
    """A new job with the same kind and parameters; the old one stays as it ended."""
    params = {k: v for k, v in job.params.items() if k != "queue"}
    new = create_job(job.kind, params, user=user, queue=job.params.get("queue", "training"))
    new.retry_of = job
    new.save(update_fields=["retry_of"])
    return new


@contextmanager
def beating(model, pk: int, *, field: str = "heartbeat_at"):
    """Touch a row's heartbeat from a side thread while long work runs.

    The work itself may sit in one long call (loading data, a big forward pass), so the
    heartbeat cannot rely on progress callbacks; a stale heartbeat is how a dead worker shows.
    """
    interval = max(1.0, settings.EDUMOOD_JOB_STALE_SECONDS / 4)
    stop = threading.Event()

    def beat():
        try:
            while not stop.wait(interval):
                model.objects.filter(pk=pk).update(**{field: timezone.now()})
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_job(job_id: int, *, task_id: str = "", soft_time_limit: float | None = None) -> None:
    """Claim a job and perform it; record success, failure or cancellation on the row."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.is_terminal:
        return
    if not job.claim(task_id):
        job.refresh_from_db()
        if job.cancel_requested and not job.is_terminal:
            job.mark_cancelled()
        return
    handler = JOB_HANDLERS.get(job.kind)
    if handler is None:
        job.fail(f"No handler for jobs of kind {job.kind!r}.")
        return
    if job.attempts > Job.MAX_ATTEMPTS:
        job.fail(f"Gave up after {Job.MAX_ATTEMPTS} attempts: the worker stopped each time.")
        return
    if job.attempts > 1:
        job.add_log(f"Attempt {job.attempts}: the previous worker stopped; starting again.")
    job.add_log(f"Started on {platform.node()}")
    try:
        with beating(Job, job.pk):
            result = handler(job)
    except JobCancelled as cancelled:
        job.add_log("Cancelled; finished work kept.")
        job.mark_cancelled(cancelled.partial_result)
    except SoftTimeLimitExceeded:
        reason = time_limit_message(job.params.get("queue", "training"), soft_time_limit)
        job.add_log(reason)
        job.fail(reason)
    except Exception as exc:
        logger.exception("Job %s failed", job.pk)
        job.add_log(f"Failed: {exc}")
        job.fail(f"{type(exc).__name__}: {exc}")
    else:
        job.add_log("Finished")
        job.finish(result)


def recover_abandoned_jobs() -> int:
    """Requeue (or fail, after too many tries) jobs whose worker died; returns how many.

    Called when a worker starts. With the Redis broker the unacknowledged message also comes
    back on its own; the claim in run_job makes the two deliveries run the job once.
    """
    stale = timezone.now() - timedelta(seconds=settings.EDUMOOD_JOB_STALE_SECONDS)
    count = 0
    for job in Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale):
        if job.attempts >= Job.MAX_ATTEMPTS:
            job.fail(f"The worker stopped {job.attempts} times while running this job.")
            count += 1
            continue
        # Conditional update: when several workers sweep at once, only one requeues the job.
        requeued = Job.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, heartbeat_at__lt=stale
        ).update(status=JobStatus.QUEUED)
        if requeued:
            job.add_log("The worker running this job stopped; queued again.")
            enqueue(job)
            count += 1
    return count


@job_handler(JobKind.DIAGNOSE)
def diagnose_worker(job: Job) -> dict:
    """Report what a worker runs on and measure its matrix throughput.

    Lets an admin check that a `training` worker really sees its GPUs before starting a long
    run, and compare machines. Params: seconds (default 3), size (matrix side, default 512).
    """
    import torch

    from ml.device import resolve_device

    seconds = float(job.params.get("seconds", 3))
    size = int(job.params.get("size", 512))
    device = resolve_device(settings.EDUMOOD_DEVICE)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    flops = 0.0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        if job.should_stop():
            raise JobCancelled({"gflops": flops / max(elapsed, 1e-9) / 1e9})
        for _ in range(10):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        flops += 10 * 2 * size**3
        elapsed = time.perf_counter() - start
        job.set_progress(elapsed / seconds, f"Measuring matrix throughput on {device}")
    return {
        "host": platform.node(),
        "device": str(device),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu_count": torch.cuda.device_count(),
        "cpu_threads": torch.get_num_threads(),
        "gflops": round(flops / elapsed / 1e9, 2),
        "seconds": round(elapsed, 2),
    }


# --- model versions -------------------------------------------------------------------------

# One loaded model per process, keyed by row id and checkpoint hash (a reused id after a
# database reset must never serve another model's weights). One slot: a long-running worker
# that sees many promotions must not keep every model it ever loaded in memory.
_CLASSIFIERS: dict[tuple[int, str], object] = {}


def register_model_version(
    checkpoint_path, *, name: str, source: str = ModelVersion.Source.TRAINED, job=None, user=None
) -> ModelVersion:
    """Store a checkpoint file as a new model version (or return the one with the same bytes)."""
    from ml.checkpoint import load_checkpoint
    from ml.labels import default_state_mapping

    path = Path(checkpoint_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    existing = ModelVersion.objects.filter(checkpoint_sha256=digest).first()
    if existing:
        return existing
    checkpoint = load_checkpoint(path)
    version = ModelVersion(
        name=name,
        arch=checkpoint["arch"],
        classes=list(checkpoint["classes"]),
        state_mapping=checkpoint.get("state_mapping")
        or default_state_mapping(checkpoint["classes"]),
        input_size=checkpoint["input_size"],
        normalisation=checkpoint["normalisation"],
        checkpoint_sha256=digest,
        source=source,
        params=checkpoint.get("config") or {},
        metrics=checkpoint.get("metrics") or {},
        history=checkpoint.get("history") or [],
        device=str(checkpoint.get("device", "")),
        job=job,
        created_by=user,
    )
    with path.open("rb") as handle:
        version.checkpoint.save(f"{digest[:16]}.pt", File(handle), save=False)
    version.save()
    return version


@transaction.atomic
def promote(version: ModelVersion, *, user=None) -> ModelVersion:
    """Make this version the one inference uses from the next photo on."""
    ModelVersion.objects.select_for_update().filter(is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    version.is_active = True
    version.promoted_at = timezone.now()
    version.promoted_by = user
    version.save(update_fields=["is_active", "promoted_at", "promoted_by"])
    return version


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def load_classifier(version: ModelVersion):
    """The ml Classifier of a version, loaded once per process and kept for later photos."""
    from ml.predict import Classifier

    key = (version.pk, version.checkpoint_sha256)
    classifier = _CLASSIFIERS.get(key)
    if classifier is None:
        classifier = Classifier.load(version.checkpoint.path, device=settings.EDUMOOD_DEVICE)
        _CLASSIFIERS.clear()
        _CLASSIFIERS[key] = classifier
    return classifier


def register_default_model() -> str:
    """Register the shipped default model and make it active when no version is active."""
    from ml.predict import DEFAULT_WEIGHTS

    if not Path(DEFAULT_WEIGHTS).is_file():
        return f"No shipped model at {DEFAULT_WEIGHTS}; photo analysis waits for a trained one."
    version = register_model_version(
        DEFAULT_WEIGHTS, name="EduMood default (FER2013)", source=ModelVersion.Source.SHIPPED
    )
    if active_model_version() is None:
        promote(version)
        return f"Registered and activated the default model: {version}"
    return ""
