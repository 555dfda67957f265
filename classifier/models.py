"""Model lifecycle: background jobs (and, built on them, datasets and model versions)."""

import time
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from .choices import TERMINAL_JOB_STATUSES, JobKind, JobStatus

PROGRESS_WRITE_INTERVAL = 1.0  # seconds; progress is cheap to compute but each write is a query


class Job(models.Model):
    """One piece of background work: its parameters, live progress and outcome.

    A Celery task only orchestrates: it claims the row, calls a service, and records the result
    here, so a page or an API client can follow the job without talking to the broker.
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
    attempts = models.PositiveSmallIntegerField(default=0)
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
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    MAX_ATTEMPTS = 3

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    def claim(self, task_id: str = "") -> bool:
        """Atomically move a queued (or abandoned running) job to running; False if not ours.

        A redelivered message, or a second worker, finds the row running with a fresh heartbeat
        and backs off, so a job never runs twice at once.
        """
        now = timezone.now()
        stale = now - timedelta(seconds=settings.EDUMOOD_JOB_STALE_SECONDS)
        claimed = (
            Job.objects.filter(pk=self.pk, cancel_requested=False)
            .filter(
                Q(status=JobStatus.QUEUED)
                | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale)
                | Q(status=JobStatus.RUNNING, heartbeat_at__isnull=True)
            )
            .update(
                status=JobStatus.RUNNING,
                heartbeat_at=now,
                attempts=F("attempts") + 1,
                celery_task_id=task_id,
            )
        )
        self.refresh_from_db()
        if claimed and self.started_at is None:
            self.started_at = now
            self.save(update_fields=["started_at"])
        return bool(claimed)

    def set_progress(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        """Record progress, at most about once a second unless forced."""
        now = time.monotonic()
        if not force and now - getattr(self, "_last_progress_write", 0.0) < PROGRESS_WRITE_INTERVAL:
            return
        self._last_progress_write = now
        self.progress = max(0.0, min(1.0, float(fraction)))
        if message:
            self.message = message[:500]
        self.heartbeat_at = timezone.now()
        Job.objects.filter(pk=self.pk).update(
            progress=self.progress, message=self.message, heartbeat_at=self.heartbeat_at
        )

    def add_log(self, line: str) -> None:
        """Append a line to the job's log (kept short: the last 500 lines)."""
        stamp = timezone.now().strftime("%H:%M:%S")
        self.log = [*self.log, f"{stamp} {line}"][-500:]
        Job.objects.filter(pk=self.pk).update(log=self.log)

    def should_stop(self) -> bool:
        """Read the cancel flag from the database; called between batches of long work."""
        self.cancel_requested = (
            Job.objects.filter(pk=self.pk).values_list("cancel_requested", flat=True).first()
            or False
        )
        return self.cancel_requested

    def finish(self, result=None, message: str = "Finished") -> None:
        self._close(JobStatus.SUCCEEDED, result=result, message=message, progress=1.0)

    def fail(self, error: str) -> None:
        self._close(JobStatus.FAILED, error=str(error)[:5000], message="Failed")

    def mark_cancelled(self, result=None) -> None:
        self._close(JobStatus.CANCELLED, result=result, message="Cancelled")

    def request_cancel(self) -> None:
        """Ask a running job to stop; a queued job is cancelled at once."""
        Job.objects.filter(pk=self.pk).update(cancel_requested=True)
        Job.objects.filter(pk=self.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), message="Cancelled"
        )
        self.refresh_from_db()

    def _close(self, status, *, result=None, error="", message="", progress=None) -> None:
        self.status = status
        self.result = result if result is not None else self.result
        self.error = error
        self.message = message
        self.finished_at = timezone.now()
        fields = ["status", "result", "error", "message", "finished_at"]
        if progress is not None:
            self.progress = progress
            fields.append("progress")
        self.save(update_fields=fields)
