"""Uploads: every file (and zip entry) checked by its content before anything is stored;
a batch is stored whole or not at all, then queued for analysis. Each refused file gets one
sentence a teacher understands: what is wrong with it and what to do."""

import hashlib
import logging
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from PIL import Image

from edumood_site import storage
from ml.errors import ImageProblem, InvalidImage, UnsafeArchive
from ml.safety import (
    IMAGE_FORMATS,
    ZIP_SIGNATURE,
    ZipLimits,
    ZipMember,
    opened_image,
    read_member,
    zip_members,
)

from ..models import Photo, Session
from .consent import ConsentRequired, delete_photo_file

logger = logging.getLogger(__name__)

ACCEPTED = "JPEG, PNG, WebP or BMP"


# All entries of one zip together may expand to this many times the per-file upload limit.
ZIP_EXPANSION_FACTOR = 4
# A stored photo's file carries this suffix until its row is committed (see _store).
STAGING_SUFFIX = ".staging"
PHOTOS_FOLDER = "photos"


class UploadError(Exception):
    """A whole upload request that cannot be accepted (no files, too many files)."""


class InvalidUpload(Exception):  # noqa: N818
    """One uploaded file (or zip entry) rejected; the message, a sentence that names the file,
    is shown next to it."""


class OverPixelBudget(Exception):  # noqa: N818
    """The batch's pixel budget cannot take this image; the caller says what is refused."""


@dataclass
class Candidate:
    """A validated image, ready to be stored.

    It holds a way to read its bytes again, not the bytes: a batch of many large files is
    checked one file at a time, so memory holds one file, never the whole batch.
    """

    name: str
    extension: str
    width: int
    height: int
    captured_at: datetime | None
    read: Callable[[], bytes]
    sha256: str


@dataclass
class UploadOutcome:
    photos: list[Photo] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # {"file", "detail"}


def _exif_capture_time(image: Image.Image) -> datetime | None:
    exif = image.getexif()
    raw = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, DateTime
    try:
        naive = datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except (TypeError, ValueError):
        return None
    return timezone.make_aware(naive)


class PixelBudget:
    """The pixels a request may still decode (EDUMOOD_MAX_BATCH_PIXELS for the whole batch)."""

    def __init__(self):
        self.limit = self.left = settings.EDUMOOD_MAX_BATCH_PIXELS

    def take(self, pixels: int) -> None:
        if pixels > self.left:
            raise OverPixelBudget
        self.left -= pixels


def _size(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 1 << 20 else f"{n / 1024:.0f} KB"


def _plain(name: str, exc: InvalidImage) -> str:
    """What is wrong with an image, in words for the teacher who chose the file."""
    limit = settings.EDUMOOD_MAX_IMAGE_PIXELS
    sentences = {
        ImageProblem.NOT_AN_IMAGE: f"{name} is not a photo we can read: use {ACCEPTED}.",
        ImageProblem.FORMAT: f"{name} is not a photo we can read: use {ACCEPTED}.",
        ImageProblem.TOO_MANY_PIXELS: (
            f"{name} has more pixels than we accept (at most {limit:,}): make it smaller and "
            "upload it again."
        ),
        ImageProblem.PIXELS_PER_BYTE: (
            f"{name} claims far more pixels than its file size allows, which no camera photo "
            "does, so it was refused to protect the server: upload the photo as the camera "
            "saved it."
        ),
        ImageProblem.CORRUPT: (
            f"{name} is damaged or incomplete (perhaps it did not finish copying): check that "
            "it opens on your computer, then upload it again."
        ),
    }
    return sentences.get(exc.problem, f"{name} could not be read ({exc}).")


def inspect_image(
    name: str, data: bytes, read: Callable[[], bytes], budget: PixelBudget
) -> Candidate:
    """Check one file by its content (never its extension); raise InvalidUpload if unusable.

    The checks are ml.safety's image policy, with the limits from the settings; the pixels are
    taken from the batch's budget before they are decoded (OverPixelBudget when they do not fit).
    """
    try:
        with opened_image(
            data,
            settings.EDUMOOD_MAX_IMAGE_PIXELS,
            formats=tuple(IMAGE_FORMATS),
            max_pixels_per_byte=settings.EDUMOOD_MAX_PIXELS_PER_BYTE,
        ) as image:
            width, height = image.size
            budget.take(width * height)
            captured_at = _exif_capture_time(image)
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: rotated 90°
                width, height = height, width
            image.load()  # decodes every pixel: a truncated or corrupt file fails here
    except InvalidImage as exc:
        raise InvalidUpload(_plain(name, exc)) from None
    extension = IMAGE_FORMATS[image.format]
    sha256 = hashlib.sha256(data).hexdigest()
    return Candidate(name, extension, width, height, captured_at, read, sha256)


def zip_limits() -> ZipLimits:
    """A zip of photos: each entry as large as one uploaded photo may be, all of them together
    a few times that."""
    limit = settings.EDUMOOD_MAX_UPLOAD_BYTES
    return ZipLimits(member_bytes=limit, total_bytes=limit * ZIP_EXPANSION_FACTOR)


def _read_entry(source, member: ZipMember, limits: ZipLimits) -> bytes:
    source.seek(0)
    with zipfile.ZipFile(source) as archive:
        return read_member(archive, member, limits)


def expand_zip(name: str, source, budget: PixelBudget) -> tuple[list[Candidate], list[dict]]:
    """The images inside a zip (a binary file object), each checked like a single upload.

    A problem with one entry (not an image, damaged, an unsafe path) refuses that entry and the
    good ones are kept. A zip that breaks a limit of the whole upload (more files than one
    upload takes, more bytes unpacked or more pixels than one upload may hold) is refused whole,
    as InvalidUpload: half a class's photos would make a misleading session.
    """
    limits = zip_limits()
    try:
        source.seek(0)
        with zipfile.ZipFile(source) as archive:
            members = zip_members(archive, limits)
    except UnsafeArchive:  # zip_members' one refusal: the entries together unpack too large
        raise InvalidUpload(
            f"{name} unpacks to more than {_size(limits.total_bytes)}, the limit for one zip, so "
            "nothing from it was stored: split it into smaller zips."
        ) from None
    except (zipfile.BadZipFile, ValueError, OSError):
        raise InvalidUpload(
            f"{name} is not a zip we can open (it may be damaged): make the zip again and upload "
            "it."
        ) from None
    if not members:
        raise InvalidUpload(f"{name} holds no files.")
    limit = settings.EDUMOOD_MAX_FILES_PER_BATCH
    if len(members) > limit:
        raise InvalidUpload(
            f"{name} holds {len(members)} files, more than the {limit} photos one upload takes, "
            f"so nothing from it was stored: split it into zips of at most {limit} photos."
        )
    candidates, errors = [], []
    for member in members:
        label = f"{name}/{member.info.filename}"
        try:
            content = _read_entry(source, member, limits)
            read = partial(_read_entry, source, member, limits)
            candidates.append(inspect_image(label, content, read, budget))
        except OverPixelBudget:
            raise InvalidUpload(
                f"{name} holds more pixels than one upload may analyse "
                f"({budget.limit:,} in all), so nothing from it was "
                "stored: split it into smaller zips."
            ) from None
        except InvalidUpload as exc:
            errors.append({"file": label, "detail": str(exc)})
        except UnsafeArchive as exc:
            reason = str(exc)
            detail = f"{label} was not stored: {reason[:1].lower()}{reason[1:]}"
            errors.append({"file": label, "detail": detail})
        except (zipfile.BadZipFile, RuntimeError, OSError, EOFError):
            detail = f"{label} could not be unpacked (the zip may be damaged): make the zip again."
            errors.append({"file": label, "detail": detail})
    return candidates, errors


def _file_candidates(name: str, upload, budget: PixelBudget) -> tuple[list[Candidate], list[dict]]:
    """The photo of one uploaded file, or the photos of a zip; InvalidUpload if none can be."""
    limit = settings.EDUMOOD_MAX_UPLOAD_BYTES
    if upload.size > limit:
        raise InvalidUpload(
            f"{name} is {_size(upload.size)}, over the limit of {_size(limit)} per file: make it "
            "smaller and upload it again."
        )
    # A photo is a photo if it decodes as one, even with a zip appended (a zip's directory
    # sits at its end, so such a file also passes for a zip). A file that starts as a zip
    # is never read whole: its entries are read one at a time.
    problem = InvalidUpload(f"{name} is not a photo we can read: use {ACCEPTED}.")
    starts_as_zip = _starts_as_zip(upload)
    if not starts_as_zip:
        try:
            return [inspect_image(name, _read_all(upload), partial(_read_all, upload), budget)], []
        except OverPixelBudget:
            raise InvalidUpload(
                f"{name} was not stored: the photos of one upload may hold "
                f"{budget.limit:,} pixels in all. Upload it again on its own."
            ) from None
        except InvalidUpload as exc:
            problem = exc
    if starts_as_zip or zipfile.is_zipfile(upload):
        return expand_zip(name, upload, budget)
    raise problem


def _candidates(files: Iterable) -> tuple[list[Candidate], list[dict]]:
    """The photos of a batch and the refused files; a file is taken whole or refused whole."""
    limit = settings.EDUMOOD_MAX_FILES_PER_BATCH
    candidates, errors, budget = [], [], PixelBudget()
    for upload in files:
        name = upload.name or "unnamed"
        pixels_left = budget.left
        try:
            found, problems = _file_candidates(name, upload, budget)
            if len(candidates) + len(found) > limit:
                raise InvalidUpload(
                    f"{name} was not stored: with the files before it, this upload would hold "
                    f"more than {limit} photos. Upload it again on its own."
                )
        except InvalidUpload as exc:
            budget.left = pixels_left  # what a refused file took is free for the next ones
            errors.append({"file": name, "detail": str(exc)})
            continue
        candidates += found
        errors += problems
    return candidates, errors


def _starts_as_zip(upload) -> bool:
    upload.seek(0)
    return upload.read(4) == ZIP_SIGNATURE


def _read_all(upload) -> bytes:
    upload.seek(0)
    return upload.read()


def upload_photos(session: Session, files: Sequence, activity: str = "") -> UploadOutcome:
    """Validate a batch (files and zips of images), store the good photos and queue them, each
    tagged with `activity` (one of the classroom's activities, or "" for none).

    Every file is checked in full before anything is written, and the rows and files of a batch
    are stored together, so a failure never leaves half an upload behind.
    """
    activity = (activity or "").strip()
    if activity and activity not in session.classroom.activities:
        raise UploadError(
            f"“{activity[:60]}” is not one of this classroom's activities: choose one of "
            f"{', '.join(session.classroom.activities) or 'none (the list is empty)'}, or none."
        )
    if session.classroom.consent is None:
        raise ConsentRequired(
            "Record consent for this classroom before uploading photos: who consented, how and "
            "when."
        )
    limit = settings.EDUMOOD_MAX_FILES_PER_BATCH
    if not files:
        raise UploadError("No file received: send one or more files in `image` parts.")
    if len(files) > limit:
        raise UploadError(
            f"{len(files)} files sent; one upload takes at most {limit}: send them in smaller "
            "groups."
        )
    candidates, errors = _candidates(files)
    candidates, duplicates = _without_duplicates(session, candidates)
    return UploadOutcome(photos=_store(session, candidates, activity), errors=errors + duplicates)


def _without_duplicates(session: Session, candidates: list[Candidate]):
    """The candidates whose content the session does not hold yet, and an error naming the
    earlier photo for each one it does (a second copy would count its faces twice)."""
    earlier = {
        sha256: name or f"photo #{pk}"
        for pk, sha256, name in session.photos.filter(
            content_sha256__in=[c.sha256 for c in candidates]
        ).values_list("pk", "content_sha256", "original_name")
    }
    kept, errors = [], []
    for candidate in candidates:
        first = earlier.get(candidate.sha256)
        if first is None:
            earlier[candidate.sha256] = candidate.name
            kept.append(candidate)
        else:
            detail = (
                f"{candidate.name} is the same photo as {first}, already in this session, so it "
                "was not stored or counted again."
            )
            errors.append({"file": candidate.name, "detail": detail, "duplicate_of": first})
    return kept, errors


def _store(session: Session, candidates: list[Candidate], activity: str) -> list[Photo]:
    """Write each file under a staging name, commit the rows, then rename the files.

    A crash before the commit leaves only staging files, which no row names; a crash after it
    leaves rows whose staging files sweep_upload_leftovers renames. Either way no original is
    ever stored where retention, deletion and the access log cannot see it.
    """
    field = Photo._meta.get_field("image")
    photos, staged = [], []
    try:
        with transaction.atomic():
            for candidate in candidates:
                photo = Photo(
                    session=session,
                    original_name=candidate.name[-255:],
                    activity=activity,
                    content_sha256=candidate.sha256,
                    width=candidate.width,
                    height=candidate.height,
                    captured_at=candidate.captured_at,
                )
                final = field.generate_filename(photo, f"photo{candidate.extension}")
                staging = field.storage.save(final + STAGING_SUFFIX, ContentFile(candidate.read()))
                staged.append(staging)
                photo.image.name = staging.removesuffix(STAGING_SUFFIX)
                photo.save()
                photos.append(photo)
            owner = session.classroom.owner_id
            transaction.on_commit(lambda: _publish(staged, owner))
    except Exception:
        for name in staged:
            field.storage.delete(name)
        raise
    return photos


def _publish(staged: list[str], owner: int) -> None:
    """Rename the committed photos' files into place and send the owner's share of them to
    the workers (the rest follow as these finish: Photo.dispatch)."""
    for name in staged:
        publish_staged(name)
    Photo.dispatch(owner)


def publish_staged(name: str) -> bool:
    """Rename a committed photo's staging file (`name` with or without its suffix) to its
    final name; False when there is none (already renamed)."""
    final = name.removesuffix(STAGING_SUFFIX)
    return storage.rename(final + STAGING_SUFFIX, final)


def sweep_upload_leftovers(grace_seconds: float | None = None) -> int:
    """Remove what a crashed upload left behind, once older than the grace period; how many.

    Request bodies spooled to FILE_UPLOAD_TEMP_DIR (this host's disk), and stored photo files
    that no row names (on disk or in the bucket: listed through the storage), are deleted; a
    staging file whose row was committed is renamed into place instead. The grace period
    spares the files of uploads still in progress in other processes. Only the names no row
    holds as they are cost a look at their age (one request each in a bucket).
    """
    if grace_seconds is None:
        grace_seconds = settings.EDUMOOD_UPLOAD_LEFTOVER_SECONDS
    cutoff = time.time() - grace_seconds
    spool = Path(settings.FILE_UPLOAD_TEMP_DIR)
    removed = 0
    for path in spool.rglob("*") if spool.is_dir() else ():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass  # its own process finished with it meanwhile
    names = list(storage.walk(PHOTOS_FOLDER))
    finals = {name: name.removesuffix(STAGING_SUFFIX) for name in names}
    known = set()
    wanted = list(set(finals.values()))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        known |= set(Photo.objects.filter(image__in=chunk).values_list("image", flat=True))
    for name in names:
        final = finals[name]
        if final in known and name == final:
            continue  # a photo's own file
        modified = storage.modified_at(name)
        if modified is None or modified >= cutoff:
            continue  # gone meanwhile (its own process finished with it), or in flight
        if final in known:
            publish_staged(final)  # committed, the rename not yet done
        else:
            delete_photo_file(name)
            removed += 1
    if removed:
        logger.warning("Removed %d file(s) left behind by interrupted uploads", removed)
    return removed
