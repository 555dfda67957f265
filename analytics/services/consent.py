"""Consent, access records and what happens to originals: the responsible-use rules."""

import io
from collections.abc import Iterable

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image, ImageFilter

from accounts.choices import AuditAction
from accounts.services import audit

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
}


def audited_settings(classroom: Classroom) -> dict:
    """The classroom's audited settings as the audit log words them, to compare after a change."""
    return {field: _setting_shown(field, getattr(classroom, field)) for field in AUDITED_SETTINGS}


def _setting_shown(field: str, value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
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
    """The analysed photos whose stored image choosing `retention` blurs or deletes at once."""
    return (
        Photo.objects.filter(
            session__classroom=classroom,
            status=PhotoStatus.DONE,
            image_state__in=RETENTION_ACTS_ON[retention],
        )
        .exclude(image="")
        .exclude(image=None)
    )


def set_retention(classroom: Classroom, retention: str) -> int:
    """Change what happens to originals, and apply it to photos already analysed.

    Tightening the setting (to blur or delete) acts on the images still stored at once, so
    the teacher's choice never waits for the next upload. Returns how many photos changed.
    """
    classroom.retention = retention
    classroom.save(update_fields=["retention"])
    photos = photos_retention_changes(classroom, retention).select_related("session__classroom")
    return sum(apply_retention(photo) for photo in photos)


def blur_faces(image: Image.Image, boxes: Iterable[tuple[int, int, int, int]]) -> Image.Image:
    """A copy with each box (widened a little, to cover hair and chin) heavily blurred."""
    out = image.convert("RGB")
    for x, y, w, h in boxes:
        pad_x, pad_y = int(w * 0.25), int(h * 0.25)
        area = (
            max(0, x - pad_x),
            max(0, y - pad_y),
            min(out.width, x + w + pad_x),
            min(out.height, y + h + pad_y),
        )
        if area[2] <= area[0] or area[3] <= area[1]:
            continue
        region = out.crop(area)
        # Pixelate first so no blur radius can be undone, then smooth the blocks.
        small = region.resize((max(1, region.width // 12), max(1, region.height // 12)))
        region = small.resize(region.size, Image.Resampling.NEAREST)
        out.paste(region.filter(ImageFilter.GaussianBlur(max(2, w // 10))), area[:2])
    return out


def apply_retention(photo: Photo) -> int:
    """Blur or delete an analysed original as its classroom asks; 1 if the photo changed.

    Originals are the most sensitive thing EduMood holds and the results do not need them, so
    unless the classroom keeps them they are blurred (the default) or deleted as soon as the
    analysis is stored. Faces the detector missed are not blurred: the blurred copy is only as
    private as the detector is thorough.
    """
    from ml.photo import open_image

    retention = photo.session.classroom.retention
    if retention == Retention.KEEP or photo.image_state == ImageState.DELETED or not photo.image:
        return 0
    if retention == Retention.BLUR and photo.image_state == ImageState.BLURRED:
        return 0
    old_name = photo.image.name
    storage = photo.image.storage
    if retention == Retention.BLUR:
        with photo.image.open("rb") as handle:
            image = open_image(handle.read(), max_pixels=settings.EDUMOOD_MAX_IMAGE_PIXELS)
        blurred = blur_faces(image, photo.faces.values_list("x", "y", "w", "h"))
        buffer = io.BytesIO()
        blurred.save(buffer, "JPEG", quality=88)  # re-encoded: no EXIF (and no GPS) survives
        photo.image.save("blurred.jpg", ContentFile(buffer.getvalue()), save=False)
        photo.image_state = ImageState.BLURRED
    else:
        photo.image = None
        photo.image_state = ImageState.DELETED
    photo.save(update_fields=["image", "image_state"])
    storage.delete(old_name)
    return 1


def delete_photo_file(name: str) -> None:
    """Remove a stored image once the row that pointed at it is gone for good."""
    if name:
        Photo._meta.get_field("image").storage.delete(name)
