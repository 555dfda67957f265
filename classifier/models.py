"""Model lifecycle: background jobs (and, built on them, datasets and model versions)."""

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property

from edumood_site.work import BackgroundWork, write_when_unlocked
from ml.scorecard import MeasuredOn, Scorecard, build_scorecard

from .choices import TERMINAL_JOB_STATUSES, JobKind, JobStatus


class Job(BackgroundWork):
    """One piece of background work: its parameters, live progress and outcome.

    A Celery task only orchestrates: it claims the row, calls a service, and records the result
    here, so a page or an API client can follow the job without talking to the broker. The
    lifecycle (claim, heartbeat, attempts, recovery) is edumood_site.work's.
    """

    kind = models.CharField(max_length=20, choices=JobKind.choices)
    status = models.CharField(
        max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    params = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    log = models.JSONField(default=list, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=64, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    QUEUED, RUNNING, TERMINAL = JobStatus.QUEUED, JobStatus.RUNNING, TERMINAL_JOB_STATUSES
    TASK = "classifier.run_job"
    WORKER_STOPPED = "The worker stopped while running this job."

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def queue(self) -> str:
        """Its kind's queue in the job table (classifier.jobs.JOBS), recorded by create_job."""
        return self.params["queue"]

    def claimable(self):
        return super().claimable().filter(cancel_requested=False)

    def claim(self, task_id: str = "", **updates) -> bool:
        """Atomically move a queued (or abandoned running) job to running; False if not ours."""
        claimed = super().claim(celery_task_id=task_id, **updates)
        if claimed and self.started_at is None:
            self.started_at = self.heartbeat_at
            self.save(update_fields=["started_at"])
        return claimed

    def failure_reason(self, exc: Exception) -> str:
        from ml.errors import without_server_paths

        # Errors written for the admin (`plain = True`: bad parameters, a dataset that cannot be
        # imported) are shown as they are; anything else keeps its type for whoever debugs it.
        # Neither names a server path.
        if getattr(exc, "plain", False):
            return without_server_paths(str(exc))
        return without_server_paths(super().failure_reason(exc))

    def not_claimed(self) -> None:
        # A job cancelled while queued for a worker that had already taken the message.
        if self.cancel_requested and not self.is_terminal:
            self.mark_cancelled()

    def set_progress(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        """Record progress, at most about once a second unless forced."""
        if not self.progress_writes.ready(force):
            return
        self.progress = max(0.0, min(1.0, float(fraction)))
        if message:
            self.message = message[:500]
        self.heartbeat_at = timezone.now()
        write_when_unlocked(
            lambda: self.held_claim().update(
                progress=self.progress, message=self.message, heartbeat_at=self.heartbeat_at
            )
        )

    def add_log(self, line: str) -> None:
        """Append a line to the job's log (kept short: the last 500 lines)."""
        stamp = timezone.now().strftime("%H:%M:%S")
        self.log = [*self.log, f"{stamp} {line}"][-500:]
        write_when_unlocked(lambda: Job.objects.filter(pk=self.pk).update(log=self.log))

    note = add_log

    def should_stop(self) -> bool:
        """Whether cancellation was requested; read from the database at most about once a
        second, so long work may ask between every batch."""
        if self.cancel_reads.ready():
            self.cancel_requested = (
                Job.objects.filter(pk=self.pk).values_list("cancel_requested", flat=True).first()
                or False
            )
        return self.cancel_requested

    def finish(self, result=None) -> None:
        """Succeed with the handler's result; its `outcome`, if any, is the closing message."""
        outcome = result.get("outcome") if isinstance(result, dict) else None
        message = outcome or "Finished"
        self._close(JobStatus.SUCCEEDED, result=result, message=message[:500], progress=1.0)

    def fail(self, error: str) -> None:
        self._close(JobStatus.FAILED, error=str(error)[:5000], message="Failed")

    def mark_cancelled(self, result=None) -> None:
        message = f"Cancelled. {self.cancel_outcome()}"[:500]
        self._close(JobStatus.CANCELLED, result=result, message=message)

    def request_cancel(self) -> None:
        """Ask a running job to stop; a queued job is cancelled at once."""
        Job.objects.filter(pk=self.pk).update(cancel_requested=True)
        cancelled_while_queued = Job.objects.filter(pk=self.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(),
            message=f"Cancelled. {self.cancel_outcome()}"[:500],
        )  # fmt: skip
        self.refresh_from_db()
        if cancelled_while_queued:
            self._discard_working_files()

    @property
    def resume_point(self) -> str:
        """The stored name of a training run's checkpoint while it runs (storage.WorkingCopy)."""
        return f"checkpoints/job-{self.pk}.pt"

    def _discard_working_files(self) -> None:
        """Remove what is stored only for the job to run, once it has ended however it ended
        (finished, failed, given up after its workers died, cancelled while queued): the
        uploaded zip of an import and a training run's resume point."""
        names = [self.resume_point]
        if self.params.get("upload"):
            names.append(self.params["upload"])
        for name in names:
            default_storage.delete(name)

    def cancel_outcome(self) -> str:
        """What a cancelled job of this kind keeps, in words for the admin who cancels it."""
        if self.started_at is None:
            return "It had not started: nothing was made, nothing is lost."
        if self.kind in (JobKind.TRAIN, JobKind.MITIGATE):
            if self.params.get("keep_if_cancelled"):
                return "The best epoch so far is kept as a model version (named cancelled)."
            return "No model version is kept; the epochs' history stays on the job page."
        if self.kind == JobKind.KFOLD:
            return "The folds finished so far stay on the job page; no mean is computed."
        if self.kind == JobKind.IMPORT_DATASET:
            return "No dataset version is made; earlier versions are untouched."
        return "No result is stored; the model version and the data are untouched."

    def _close(self, status, *, result=None, error="", message="", progress=None) -> None:
        """Close the job, if the claim this run took is still its own (`held_claim`)."""
        fields = {
            "status": status,
            "result": result if result is not None else self.result,
            "error": error,
            "message": message,
            "finished_at": timezone.now(),
        }
        if progress is not None:
            fields["progress"] = progress
        if self.held_claim().update(**fields):
            for name, value in fields.items():
                setattr(self, name, value)
            self._discard_working_files()


def checkpoint_upload_to(instance, filename: str) -> str:
    return f"models/{filename}"


class ModelVersion(models.Model):
    """A trained classifier: its checkpoint, what it predicts, how it scored. One is active.

    The checkpoint file holds everything inference needs (weights, class names, input size,
    normalisation); the columns here copy what pages and the API show without loading it.
    """

    class Source(models.TextChoices):
        SHIPPED = "shipped", "Shipped with EduMood"
        TRAINED = "trained", "Trained here"

    name = models.CharField(max_length=120)
    arch = models.CharField(max_length=60)
    classes = models.JSONField()
    state_mapping = models.JSONField()
    input_size = models.PositiveSmallIntegerField(default=48)
    normalisation = models.CharField(max_length=30)
    checkpoint = models.FileField(upload_to=checkpoint_upload_to, max_length=255)
    checkpoint_sha256 = models.CharField(max_length=64, unique=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.TRAINED)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=list, blank=True)
    device = models.CharField(max_length=40, blank=True)
    # ml.quantify.Calibration.to_json(): the version's state-level errors on labelled
    # validation faces, which correct session shares. Null: not measured, shares stay raw.
    calibration = models.JSONField(null=True, blank=True)
    # ml.scorecard.Scorecard.to_json(): the one record of how the version was measured, that
    # every page, the API and the teachers' banners read (see `card`).
    scorecard = models.JSONField(null=True, blank=True)
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=False)
    promoted_at = models.DateTimeField(null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dataset_version = models.ForeignKey(
        "DatasetVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="model_versions",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_model_version"
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.arch})"

    def save(self, *args, **kwargs):
        # Every version has a scorecard: one registered without a measurement named (a
        # checkpoint's own training metrics) is scored on its validation split.
        if self.scorecard is None:
            self.scorecard = self.training_scorecard().to_json()
        super().save(*args, **kwargs)

    def training_scorecard(self, measured_on: MeasuredOn | None = None) -> Scorecard:
        """The scorecard of the metrics the checkpoint brought from training: measured on the
        validation split of its own training upload unless `measured_on` says otherwise."""
        if measured_on is None:
            name = "its training validation split (not recorded)"
            if self.dataset_version_id:
                name = f"the validation split of {self.dataset_version}"
            size = (self.metrics or {}).get("n") or sum(
                map(sum, (self.metrics or {}).get("confusion_matrix") or [])
            )
            measured_on = MeasuredOn(name, int(size), False, self.dataset_version_id)
        return build_scorecard(
            self.metrics, self.classes, self.state_mapping, measured_on=measured_on,
            source="training, at the epoch it kept", calibration=self.calibration,
        )  # fmt: skip

    def refresh_from_db(self, *args, **kwargs):
        self.__dict__.pop("card", None)  # re-read with the row
        super().refresh_from_db(*args, **kwargs)

    @cached_property
    def card(self) -> Scorecard:
        """The version's scorecard (ml.scorecard): its numbers and flags, read everywhere."""
        return Scorecard.from_json(self.scorecard or self.training_scorecard().to_json())


class Dataset(models.Model):
    """A named line of labelled image sets; each import adds an immutable version."""

    name = models.CharField(max_length=120, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def latest_version(self):
        """The newest version; no query when `versions` is prefetched (as lists do)."""
        prefetched = getattr(self, "_prefetched_objects_cache", {}).get("versions")
        if prefetched is not None:
            return max(prefetched, key=lambda v: v.number, default=None)
        return self.versions.order_by("-number").first()


class AttributeSource(models.TextChoices):
    SELF_REPORTED = "self-reported", "Self-reported"
    ANNOTATOR = "annotator", "Annotator"
    MODEL_INFERRED = "model-inferred", "Model-inferred"


def dataset_cache_upload_to(instance, filename: str) -> str:
    return f"datasets/{filename}"


class DatasetVersionManager(models.Manager):
    """Leaves `figures` out of every query (about 0.5 MB of JSON for 7 classes, most of it the
    grid of sample images): read on the dataset page only, it loads when first read there."""

    def get_queryset(self):
        return super().get_queryset().defer("figures")


class DatasetVersion(models.Model):
    """One imported, preprocessed image set: the decoded uint8 cache plus what was learnt about it.

    Immutable: the content hash (images, labels, classes, attributes) names it, so training,
    evaluation and audits that name a version always meant exactly these images. Its page's
    figures are made once, by the import job in the worker (decoding the cache takes torch and
    seconds; a web process has neither), and stored in `figures`.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, unique=True)
    cache = models.FileField(upload_to=dataset_cache_upload_to, max_length=255)
    classes = models.JSONField(default=list)
    image_size = models.PositiveSmallIntegerField(default=48)
    size = models.PositiveIntegerField(default=0)
    class_counts = models.JSONField(default=dict)
    attribute_counts = models.JSONField(default=dict, blank=True)
    attribute_source = models.CharField(
        max_length=20, choices=AttributeSource.choices, default=AttributeSource.ANNOTATOR
    )
    summary = models.JSONField(default=dict, blank=True)
    # ml.eda's figures as the page draws them (edumood_site.figures.plain_figures); empty when
    # the cache could not be read to make them.
    figures = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=500, blank=True)
    import_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DatasetVersionManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_number")
        ]

    def __str__(self):
        return f"{self.dataset.name} v{self.number}"

    @property
    def attribute_columns(self) -> list[str]:
        return list(self.attribute_counts)


class AuditReport(models.Model):
    """A bias audit of one model version on one dataset version (ml.fairness.audit's report)."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="audits")
    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.CASCADE, related_name="audits"
    )
    attributes = models.JSONField(default=list)
    source = models.CharField(max_length=20, choices=AttributeSource.choices)
    result = models.JSONField(default=dict)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Audit #{self.pk} of {self.model_version} on {self.dataset_version}"
