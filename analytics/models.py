"""The classroom side: classrooms, their consent records, sessions, photos and per-face results."""

import uuid
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from accounts.models import AppendOnlyModel
from edumood_site.work import BackgroundWork
from ml.options import DEFAULT_DETECTION_MODE

from .choices import (
    TERMINAL_PHOTO_STATUSES,
    AccessAction,
    ConsentMethod,
    DetectionMode,
    ImageState,
    PhotoStatus,
    Retention,
    SessionKind,
)

DEFAULT_ACTIVITIES = (
    "introduction", "direct teaching", "group work", "practice", "quiz", "discussion",
)  # fmt: skip
ACTIVITY_MAX_LENGTH = 40


MAX_ACTIVITIES = 20


def default_activities() -> list[str]:
    return list(DEFAULT_ACTIVITIES)


def clean_activities(names) -> list[str]:
    """A classroom's activity list as entered (trimmed, empty ones and repeats dropped, in
    order), or a ValidationError that says what to fix."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ValidationError("Activities are a list of names.")
    cleaned = list(dict.fromkeys(" ".join(n.split()) for n in names if n.strip()))
    long = [n for n in cleaned if len(n) > ACTIVITY_MAX_LENGTH]
    if long:
        raise ValidationError(
            f"“{long[0][:60]}” is longer than {ACTIVITY_MAX_LENGTH} characters: shorten it."
        )
    if len(cleaned) > MAX_ACTIVITIES:
        raise ValidationError(f"{len(cleaned)} activities; keep at most {MAX_ACTIVITIES}.")
    return cleaned


class Classroom(models.Model):
    """A class a teacher photographs; only its owner ever sees it or anything under it."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="classrooms"
    )
    name = models.CharField(max_length=120)
    subject = models.CharField(max_length=120, blank=True)
    description = models.TextField(blank=True)
    # A blurred copy is the default: results drawn on nothing (originals deleted) left teachers
    # unable to tell which box was which part of the room, and the protected copy (ml.privacy:
    # the whole photo in coarse blocks, detected faces covered) keeps the layout but no face or
    # name. Deleting stays one choice away.
    retention = models.CharField(max_length=10, choices=Retention.choices, default=Retention.BLUR)
    detection_mode = models.CharField(
        max_length=10,
        choices=DetectionMode.choices,
        default=DEFAULT_DETECTION_MODE,
        help_text=(
            "Thorough finds more small and turned faces; analysis takes several times as long."
        ),
    )
    # Class-level aggregates are what the platform is for; a face's own state invites judging
    # one student. Where a school wants only aggregates, no page, export or API answer of this
    # classroom shows a face's box, state or probabilities (the counts still include them).
    hide_face_detail = models.BooleanField(
        "Hide per-face detail",
        default=False,
        help_text=(
            "Show class-level aggregates only: no face boxes, states or probabilities on the "
            "session pages, in exports or through the API."
        ),
    )
    # What a batch of photos can be tagged with, so the dashboard can pool faces of one kind of
    # lesson activity across sessions; the teacher edits the list (services.activities).
    activities = models.JSONField(default=default_activities, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name

    @property
    def consent(self) -> "Consent | None":
        """The latest consent record in force (dated today or earlier); uploads are refused
        while there is none.

        Lists prefetch `consents` (see `with_consents`), and then no query runs per classroom.
        """
        today = timezone.localdate()
        prefetched = getattr(self, "_prefetched_objects_cache", {}).get("consents")
        if prefetched is not None:
            in_force = [c for c in prefetched if c.obtained_on <= today]
            return max(in_force, key=lambda c: (c.recorded_at, c.pk), default=None)
        return self.consents.filter(obtained_on__lte=today).order_by("-recorded_at", "-id").first()

    @staticmethod
    def with_consents(classrooms):
        """The queryset with consents (and who recorded them) loaded in one extra query."""
        return classrooms.prefetch_related(
            models.Prefetch("consents", queryset=Consent.objects.select_related("recorded_by"))
        )


def validate_consent_date(value) -> None:
    """Consent is recorded once it was obtained; a later date would unlock uploads early."""
    if value > timezone.localdate():
        raise ValidationError("Consent cannot be dated in the future.")


class Consent(models.Model):
    """Who agreed to photos of this class being analysed, how and when (kept as a history)."""

    classroom = models.ForeignKey(Classroom, on_delete=models.CASCADE, related_name="consents")
    obtained_from = models.CharField(
        max_length=200, help_text="Who consented, e.g. 'parents/guardians of all 24 students'."
    )
    method = models.CharField(max_length=20, choices=ConsentMethod.choices)
    obtained_on = models.DateField()
    notes = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-recorded_at", "-id"]

    def __str__(self):
        return f"{self.get_method_display()} from {self.obtained_from} on {self.obtained_on}"


class Session(models.Model):
    """One lesson or meeting of a classroom; photos taken during it are analysed together."""

    classroom = models.ForeignKey(Classroom, on_delete=models.CASCADE, related_name="sessions")
    title = models.CharField(max_length=200)
    started_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(
        max_length=10, choices=SessionKind.choices, default=SessionKind.IN_PERSON
    )
    # The teacher's own reminder of what happened in the lesson ("moved the quiz to the start"),
    # shown beside the session on the trend and in the report. Private like the results: only
    # the classroom's owner sees it (the Django admin leaves it out).
    note = models.CharField(
        "Private note",
        max_length=300,
        blank=True,
        help_text="Only you see it; it appears on the classroom trend and in the report.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # ml.quantify.Quantification.to_json() of the session's faces, computed by the worker after
    # each analysis with the calibration of the model version that produced the faces; null
    # when there are no faces or that version has no calibration.
    quantification = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return self.title


def photo_upload_to(instance: "Photo", filename: str) -> str:
    # A random name: the teacher's file name may carry a student's name, and must not be
    # guessable from a URL either (files are only ever served through a permission check).
    suffix = PurePath(filename).suffix.lower()[:6]
    return (
        f"photos/{instance.session.classroom_id}/{instance.session_id}/{uuid.uuid4().hex}{suffix}"
    )


class Photo(BackgroundWork):
    """An uploaded photo and its analysis status. Results outlive the image file.

    Its analysis runs through edumood_site.work's lifecycle, like a job.
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="photos")
    image = models.FileField(upload_to=photo_upload_to, max_length=255, null=True, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    # The uploaded file's SHA-256: the same photo uploaded to a session again is recognised
    # (and not counted twice) even after the stored copy was blurred or deleted.
    content_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    # The lesson activity its upload was tagged with (one of its classroom's list then), or "".
    activity = models.CharField(max_length=ACTIVITY_MAX_LENGTH, blank=True, db_index=True)
    status = models.CharField(
        max_length=10, choices=PhotoStatus.choices, default=PhotoStatus.QUEUED, db_index=True
    )
    error = models.TextField(blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    captured_at = models.DateTimeField(null=True, blank=True, help_text="EXIF DateTimeOriginal")
    model_version = models.ForeignKey(
        "classifier.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="photos",
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)
    analysed_at = models.DateTimeField(null=True, blank=True)
    image_state = models.CharField(
        max_length=10, choices=ImageState.choices, default=ImageState.ORIGINAL
    )
    # ml.privacy.VERSION of the transform that made the stored blurred copy; 0 for copies made
    # before it (they blurred detected faces only), which `manage.py protect_stored_copies`
    # makes again.
    privacy_version = models.PositiveSmallIntegerField(default=0)

    QUEUED, RUNNING, TERMINAL = PhotoStatus.QUEUED, PhotoStatus.ANALYSING, TERMINAL_PHOTO_STATUSES
    TASK = "analytics.analyse_photo"
    WORKER_STOPPED = "The worker stopped while analysing this photo; retry."
    # Each teacher's photos share one window of the inference queue (BackgroundWork.dispatch).
    FAIR_SHARE = "session__classroom__owner"

    class Meta:
        ordering = ["uploaded_at", "id"]

    def __str__(self):
        return f"Photo #{self.pk} ({self.status})"

    @classmethod
    def stale_seconds(cls) -> int:
        # A photo takes seconds, and a teacher watches it: its worker's death shows sooner
        # than a training job's.
        return settings.EDUMOOD_PHOTO_STALE_SECONDS

    def finish(self, result=None) -> None:
        if self.held_claim().update(status=PhotoStatus.DONE):
            self.status = PhotoStatus.DONE

    def fail(self, reason: str) -> None:
        if self.held_claim().update(status=PhotoStatus.FAILED, error=reason[:2000]):
            self.status, self.error = PhotoStatus.FAILED, reason[:2000]  # the row may be gone

    def mark_cancelled(self, result=None) -> None:
        """Nothing to record: a photo's analysis stops early only when the photo was deleted
        (with its session or classroom) while it ran (services.analysis)."""

    def failure_reason(self, exc: Exception) -> str:
        from ml.errors import MLError, without_server_paths

        # Errors written for the teacher (`plain = True`, as Job's: services.analysis's
        # AnalysisError) and ml's are reasons the teacher can act on.
        if getattr(exc, "plain", False) or isinstance(exc, MLError):
            return without_server_paths(str(exc))
        return without_server_paths(f"Analysis failed ({type(exc).__name__}: {exc}); retry.")


class FaceResult(models.Model):
    """One detected face: its box in the photo, the class probabilities and the state.

    No crop of the face is stored, and nothing here identifies the person.
    """

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="faces")
    x = models.IntegerField()
    y = models.IntegerField()
    w = models.PositiveIntegerField()
    h = models.PositiveIntegerField()
    score = models.FloatField(help_text="Detector confidence")
    label = models.CharField(max_length=40)
    state = models.CharField(max_length=40, db_index=True)
    probabilities = models.JSONField(default=dict)
    model_version = models.ForeignKey(
        "classifier.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="face_results",
    )

    class Meta:
        ordering = ["photo_id", "y", "x", "id"]

    def __str__(self):
        return f"{self.state} face in photo #{self.photo_id}"


class AccessRecord(AppendOnlyModel):
    """Who saw or exported which classroom data, and when (architecture: "Responsible use").

    Records outlive the classroom and the user (their links are nulled, the names stay), so the
    log still answers "who exported this class's results" after a deletion. Append-only: no
    code path changes or deletes one, and nothing purges them.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=20, choices=AccessAction.choices)
    classroom = models.ForeignKey(
        Classroom, null=True, on_delete=models.SET_NULL, related_name="access_records"
    )
    classroom_name = models.CharField(max_length=200)
    session = models.ForeignKey(Session, null=True, on_delete=models.SET_NULL, related_name="+")
    detail = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.username} {self.get_action_display()} ({self.classroom_name})"
