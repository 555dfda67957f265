"""Consent, access records and what happens to originals: the responsible-use rules."""

import io
import time
from functools import partial

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q

from accounts.choices import AuditAction
from accounts.services import audit
from edumood_site.work import enqueue, queue_time_limit
from ml.privacy import STORED_SIDE, VERSION, protected_copy
from ml.safety import open_image

from ..choices import AccessAction, ImageState, PhotoStatus, Retention
from ..models import AccessRecord, Classroom, Consent, Photo


class ConsentRequired(Exception):  # noqa: N818  (a refusal, answered with 409)
    """Uploads to a classroom without a consent record are refused."""


def record_access(
    user, action: AccessAction, classroom: Classroom, *, session=None, detail: str = ""
) -> AccessRecord:
    """Log that a user saw or exported a classroom's data (kept after deletions)."""
    return AccessRecord.objects.create(
        user=user,
        username=user.get_username(),
        action=action,
        classroom=classroom,
        classroom_name=classroom.name,
        session=session,
        detail=detail[:200],
    )


# The classroom settings whose every change goes to the audit log (accounts), and as what.
AUDITED_SETTINGS = {
    "retention": AuditAction.RETENTION,
    "hide_face_detail": AuditAction.FACE_DETAIL,
    "detection_mode": AuditAction.DETECTION,
    "activities": AuditAction.ACTIVITIES,
}


def audited_settings(classroom: Classroom) -> dict:
    """The classroom's audited settings as the audit log words them, to compare after a change."""
    return {field: _setting_shown(field, getattr(classroom, field)) for field in AUDITED_SETTINGS}


def _setting_shown(field: str, value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return str(dict(Classroom._meta.get_field(field).flatchoices).get(value, value))


def audit_setting_changes(by, classroom: Classroom, before: dict) -> None:
    """Write each audited setting of `classroom` that differs from `before` to the audit log."""
    after = audited_settings(classroom)
    for field, action in AUDITED_SETTINGS.items():
        if before[field] != after[field]:
            audit(by, action, classroom, old=before[field], new=after[field])


def record_consent(classroom: Classroom, *, user, **fields) -> Consent:
    """Store a new consent record; the latest one is the classroom's consent."""
    return Consent.objects.create(classroom=classroom, recorded_by=user, **fields)


# The stored images each setting blurs or deletes when it is chosen: tightening to delete also
# removes the blurred copies that an earlier "blur" setting kept.
RETENTION_ACTS_ON = {
    Retention.KEEP: [],
    Retention.BLUR: [ImageState.ORIGINAL],
    Retention.DELETE: [ImageState.ORIGINAL, ImageState.BLURRED],
}


def photos_retention_changes(classroom: Classroom, retention: str):
    """The analysed photos whose stored image choosing `retention` blurs or deletes."""
    return (
        Photo.objects.filter(
            session__classroom=classroom,
            status=PhotoStatus.DONE,
            image_state__in=RETENTION_ACTS_ON[retention],
        )
        .exclude(image="")
        .exclude(image=None)
    )


# The task that applies a classroom's retention to its stored photos (analytics.tasks).
RETENTION_TASK = "analytics.apply_retention"


def set_retention(classroom: Classroom, retention: str) -> int:
    """Change what happens to originals, and have a worker apply it to photos already analysed.

    Tightening the setting (to blur or delete) acts on the images still stored, so the
    teacher's choice never waits for the next upload: once the change is committed, a task on
    the inference queue works through them (a protected copy decodes and re-encodes the photo,
    0.13 s for 1600 x 1200 px: a classroom's year of photos is minutes of work, not a request's).
    Analyses that end meanwhile apply the new setting themselves. Returns how many photos it
    will change.
    """
    classroom.retention = retention
    classroom.save(update_fields=["retention"])
    changes = photos_retention_changes(classroom, retention).count()
    if changes:
        transaction.on_commit(partial(enqueue, RETENTION_TASK, classroom.pk, "inference"))
    return changes


def resend_pending_retention() -> int:
    """Send the retention task again for every classroom whose analysed photos still hold an
    image its setting blurs or deletes (beat runs this every EDUMOOD_RESEND_SECONDS); returns
    how many classrooms.

    set_retention's message has no row of its own for the background-work sweep to resend, so a
    message lost in a broker restart would leave originals stored that the teacher asked to be
    protected. A task still on its way is sent twice: harmless, a changed photo is skipped.
    """
    pending = Q()
    for retention, states in RETENTION_ACTS_ON.items():
        if states:
            pending |= Q(session__classroom__retention=retention, image_state__in=states)
    classrooms = (
        Photo.objects.filter(pending, status=PhotoStatus.DONE)
        .exclude(image="")
        .exclude(image=None)
        .order_by()  # the model's ordering would make DISTINCT keep one row per photo
        .values_list("session__classroom", flat=True)
        .distinct()
    )
    classroom_ids = list(classrooms)
    for classroom_id in classroom_ids:
        enqueue(RETENTION_TASK, classroom_id, "inference")
    return len(classroom_ids)


def apply_classroom_retention(classroom_id: int, soft_time_limit: float | None = None) -> int:
    """Blur or delete the stored photos of a classroom as its current setting asks (the task's
    work); returns how many changed.

    Stops after half its time limit and sends the task again for the rest, so no classroom is
    too large for one; a photo it already changed is not changed again.
    """
    classroom = Classroom.objects.filter(pk=classroom_id).first()
    if classroom is None:
        return 0
    deadline = time.monotonic() + (soft_time_limit or queue_time_limit("inference")) / 2
    photos = photos_retention_changes(classroom, classroom.retention)
    changed = 0
    for photo in list(photos.select_related("session__classroom")):
        if time.monotonic() > deadline:
            transaction.on_commit(partial(enqueue, RETENTION_TASK, classroom.pk, "inference"))
            break
        changed += apply_retention(photo)
    return changed


def apply_retention(photo: Photo) -> int:
    """Blur or delete an analysed original as its classroom asks; 1 if the photo changed.

    Originals are the most sensitive thing EduMood holds and the results do not need them, so
    unless the classroom keeps them they are replaced by a protected copy (the default) or
    deleted as soon as the analysis is stored. A blurred copy made by an older transform is
    made again.
    """
    retention = photo.session.classroom.retention
    if retention == Retention.KEEP or photo.image_state == ImageState.DELETED or not photo.image:
        return 0
    if retention == Retention.BLUR:
        return protect_stored_copy(photo)
    old_name, storage = photo.image.name, photo.image.storage
    photo.image = None
    photo.image_state = ImageState.DELETED
    photo.save(update_fields=["image", "image_state"])
    storage.delete(old_name)
    return 1


def protect_stored_copy(photo: Photo) -> int:
    """Replace a photo's stored image by its protected copy (ml.privacy); 1 if it changed.

    Works from the original or from a copy an older transform made: the blocks and covered
    boxes of the new transform take in whatever the old copy still showed. A copy of the
    current VERSION is left alone, so running this again changes nothing.
    """
    if not photo.image or photo.image_state == ImageState.DELETED:
        return 0
    if photo.image_state == ImageState.BLURRED and photo.privacy_version >= VERSION:
        return 0
    old_name, storage = photo.image.name, photo.image.storage
    with photo.image.open("rb") as handle:
        # Reduced while decoding (by an integer factor, so to between 1x and 2x STORED_SIDE):
        # the copy has no more than STORED_SIDE pixels along its long side anyway.
        image = open_image(
            handle.read(), settings.EDUMOOD_MAX_IMAGE_PIXELS, max_side=2 * STORED_SIDE
        )
    # The boxes are in the photo's own pixels; an older copy may be smaller than the photo.
    size = (photo.width, photo.height) if photo.width and photo.height else None
    boxes = list(photo.faces.values_list("x", "y", "w", "h"))
    copy = protected_copy(image, boxes, size or image.info["full_size"])
    buffer = io.BytesIO()
    copy.save(buffer, "JPEG", quality=88)  # re-encoded: no EXIF (and no GPS) survives
    photo.image.save("blurred.jpg", ContentFile(buffer.getvalue()), save=False)
    photo.image_state = ImageState.BLURRED
    photo.privacy_version = VERSION
    photo.save(update_fields=["image", "image_state", "privacy_version"])
    storage.delete(old_name)
    return 1


def delete_photo_file(name: str) -> None:
    """Remove a stored image once the row that pointed at it is gone for good."""
    if name:
        Photo._meta.get_field("image").storage.delete(name)
