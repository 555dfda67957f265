"""Domain operations of the classroom side. Pages, the API and tasks call these."""

import csv
import io
import logging
import re
import warnings
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from PIL import Image, ImageFilter

from classifier.services import active_model_version, load_classifier
from edumood_site.work import enqueue, perform
from ml.labels import STATES

from .choices import AccessAction, ImageState, PhotoStatus, Retention, SessionKind
from .models import AccessRecord, Classroom, Consent, FaceResult, Photo, Session

logger = logging.getLogger(__name__)

ALLOWED_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp"}
ACCEPTED_TYPES_TEXT = "JPEG, PNG, WebP or BMP"
# Photos compress at most a few times; a zip entry that claims to expand a hundredfold is a
# bomb, not a photo.
ZIP_MAX_RATIO = 100
# All entries of one zip together may expand to this many times the per-file upload limit.
ZIP_EXPANSION_FACTOR = 4
ENGAGED = "Engaged"
ENGAGEMENT_DEFINITION = (
    "The engagement index is the share of detected faces whose estimated state is Engaged "
    "(expressions read as happy or surprised): Engaged faces ÷ all faces, from 0 to 1."
)


class ConsentRequired(Exception):  # noqa: N818  (a refusal, answered with 409)
    """Uploads to a classroom without a consent record are refused."""


class UploadError(Exception):
    """A whole upload request that cannot be accepted (no files, too many files)."""


class InvalidUpload(Exception):  # noqa: N818
    """One uploaded file (or zip entry) rejected; the message is shown next to the file."""


class PhotoActionError(Exception):
    """An action that does not apply to the photo in its current state."""


# --- classrooms and consent --------------------------------------------------------------------


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


# --- upload validation ---------------------------------------------------------------------------


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


def inspect_image(name: str, data: bytes, read: Callable[[], bytes]) -> Candidate:
    """Check one file by its content (never its extension); raise InvalidUpload if unusable."""
    max_pixels = settings.EDUMOOD_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in ALLOWED_FORMATS:
                    raise InvalidUpload(
                        f"{image.format} images are not accepted; use {ACCEPTED_TYPES_TEXT}."
                    )
                width, height = image.size
                if width * height > max_pixels:
                    raise InvalidUpload(
                        f"{width}×{height} pixels is over the limit of {max_pixels:,} pixels "
                        "(an oversized photo or a decompression bomb)."
                    )
                captured_at = _exif_capture_time(image)
                if image.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: rotated 90°
                    width, height = height, width
                image.load()  # decodes every pixel: a truncated or corrupt file fails here
    except InvalidUpload:
        raise
    except Image.UnidentifiedImageError:
        raise InvalidUpload(f"Not an image: {ACCEPTED_TYPES_TEXT} expected.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidUpload(
            "The image declares far more pixels than any photo (a decompression bomb)."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidUpload(f"The image is damaged or truncated ({exc}).") from None
    return Candidate(name, ALLOWED_FORMATS[image.format], width, height, captured_at, read)


_UNSAFE_ZIP_PATH = re.compile(r"^(/|\\|[A-Za-z]:)")


def _zip_entry_problem(info: zipfile.ZipInfo) -> str:
    limit = settings.EDUMOOD_MAX_UPLOAD_BYTES
    if (
        _UNSAFE_ZIP_PATH.match(info.filename)
        or ".." in PurePosixPath(info.filename.replace("\\", "/")).parts
    ):
        return "Unsafe path in the zip (absolute or leading outside the archive)."
    if info.flag_bits & 0x1:
        return "Encrypted zip entries are not accepted."
    if info.file_size > limit:
        return f"Larger than the limit of {limit // (1024 * 1024)} MB per photo."
    if info.file_size > ZIP_MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1 << 20:
        return (
            f"Compressed {info.file_size // max(info.compress_size, 1)}:1, which no photo does "
            "(a zip bomb)."
        )
    return ""


def _read_entry(source, info: zipfile.ZipInfo, limit: int) -> bytes:
    source.seek(0)
    with zipfile.ZipFile(source) as archive, archive.open(info) as handle:
        # The header's size may lie; never read more than the limit allows.
        return handle.read(limit + 1)


def expand_zip(name: str, source) -> tuple[list[Candidate], list[dict]]:
    """The images inside a zip (a binary file object), each checked like a single upload.

    Problems are reported per entry; the good entries are kept.
    """
    limit = settings.EDUMOOD_MAX_UPLOAD_BYTES
    try:
        source.seek(0)
        archive = zipfile.ZipFile(source)
        entries = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        return [], [{"file": name, "detail": f"Not a readable zip archive ({exc})."}]
    # macOS adds resource-fork shadows of every file; they are not the teacher's photos.
    entries = [
        info
        for info in entries
        if not info.filename.startswith("__MACOSX/")
        and not PurePosixPath(info.filename).name.startswith(".")
    ]
    total = sum(info.file_size for info in entries)
    if total > limit * ZIP_EXPANSION_FACTOR:
        return [], [
            {
                "file": name,
                "detail": f"The zip expands to {total // (1024 * 1024)} MB, over the limit of "
                f"{limit * ZIP_EXPANSION_FACTOR // (1024 * 1024)} MB (a zip bomb?).",
            }
        ]
    candidates, errors = [], []
    for info in entries:
        label = f"{name}/{info.filename}"
        problem = _zip_entry_problem(info)
        if not problem:
            try:
                content = _read_entry(source, info, limit)
                if len(content) > limit:
                    problem = "Expands beyond the per-photo size limit (a zip bomb)."
                elif content[:4] == b"PK\x03\x04":
                    problem = "Zips inside the zip are not accepted."
                else:
                    read = partial(_read_entry, source, info, limit)
                    candidates.append(inspect_image(label, content, read))
            except InvalidUpload as exc:
                problem = str(exc)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as exc:
                problem = f"Unreadable zip entry ({exc})."
        if problem:
            errors.append({"file": label, "detail": problem})
    if not entries:
        errors.append({"file": name, "detail": "The zip holds no files."})
    return candidates, errors


def _candidates(files: Iterable) -> tuple[list[Candidate], list[dict]]:
    limit = settings.EDUMOOD_MAX_UPLOAD_BYTES
    candidates, errors = [], []
    for upload in files:
        name = upload.name or "unnamed"
        if upload.size > limit:
            errors.append(
                {"file": name, "detail": f"Larger than the limit of {limit // 1024 // 1024} MB."}
            )
            continue
        if zipfile.is_zipfile(upload):
            found, problems = expand_zip(name, upload)
            candidates += found
            errors += problems
            continue
        try:
            candidates.append(inspect_image(name, _read_all(upload), partial(_read_all, upload)))
        except InvalidUpload as exc:
            errors.append({"file": name, "detail": str(exc)})
    return candidates, errors


def _read_all(upload) -> bytes:
    upload.seek(0)
    return upload.read()


def upload_photos(session: Session, files: Sequence) -> UploadOutcome:
    """Validate a batch (files and zips of images), store the good photos and queue them.

    Every file is checked in full before anything is written, and the rows and files of a batch
    are stored together, so a failure never leaves half an upload behind.
    """
    if session.classroom.consent is None:
        raise ConsentRequired(
            "Record consent for this classroom before uploading photos: who consented, how and "
            "when."
        )
    limit = settings.EDUMOOD_MAX_FILES_PER_BATCH
    if not files:
        raise UploadError("No file received: send one or more files in `image` parts.")
    if len(files) > limit:
        raise UploadError(f"{len(files)} files sent; at most {limit} per upload.")
    candidates, errors = _candidates(files)
    for extra in candidates[limit:]:
        errors.append(
            {"file": extra.name, "detail": f"Over the limit of {limit} photos per upload."}
        )
    outcome = UploadOutcome(photos=_store(session, candidates[:limit]), errors=errors)
    return outcome


def _store(session: Session, candidates: list[Candidate]) -> list[Photo]:
    photos, written = [], []
    try:
        with transaction.atomic():
            for candidate in candidates:
                photo = Photo(
                    session=session,
                    original_name=candidate.name[-255:],
                    width=candidate.width,
                    height=candidate.height,
                    captured_at=candidate.captured_at,
                )
                photo.image.save(
                    f"photo{candidate.extension}", ContentFile(candidate.read()), save=False
                )
                written.append(photo.image.name)
                photo.save()
                photos.append(photo)
            ids = [photo.pk for photo in photos]
            transaction.on_commit(lambda: [enqueue_analysis(pk) for pk in ids])
    except Exception:
        storage = Photo._meta.get_field("image").storage
        for name in written:
            storage.delete(name)
        raise
    return photos


# --- analysis ---------------------------------------------------------------------------------


def enqueue_analysis(photo_id: int) -> None:
    enqueue(Photo.TASK, photo_id, "inference")


class AnalysisError(Exception):
    """A photo that cannot be analysed for a reason the teacher can act on."""


def analyse_photo(photo_id: int, *, soft_time_limit: float | None = None) -> None:
    """Claim a photo, detect and classify all its faces, store the results, apply retention.

    Idempotent: a finished photo, or one another worker is analysing, is left alone; failures
    mark the photo failed with the reason (edumood_site.work's lifecycle).
    """
    rows = Photo.objects.select_related("session__classroom")
    perform(rows, photo_id, _analyse_and_store, soft_time_limit=soft_time_limit)


def _analyse_and_store(photo: Photo) -> None:
    version, analysis = _analyse(photo)
    _store_results(photo, version, analysis)
    try:
        # Before "done": a page that sees the photo done must get the final image.
        apply_retention(photo)
    except Exception:
        # The results are stored; the original stays until the setting is applied again.
        logger.exception("Retention for photo %s failed", photo.pk)


def _analyse(photo: Photo):
    from ml.photo import analyze_photo, open_image

    version = active_model_version()
    if version is None:
        raise AnalysisError("No active model version: an administrator must promote one; retry.")
    if not photo.image:
        raise AnalysisError("The original photo is no longer stored, so it cannot be analysed.")
    with photo.image.open("rb") as handle:
        data = handle.read()
    image = open_image(data, max_pixels=settings.EDUMOOD_MAX_IMAGE_PIXELS)
    classifier = load_classifier(version)
    return version, analyze_photo(image, classifier)


def _store_results(photo: Photo, version, analysis) -> None:
    rows = [
        FaceResult(
            photo=photo,
            x=face.box.x,
            y=face.box.y,
            w=face.box.w,
            h=face.box.h,
            score=float(face.box.score),
            label=face.label,
            state=face.state,
            probabilities={k: round(float(v), 6) for k, v in face.probabilities.items()},
            model_version=version,
        )
        for face in analysis.faces
    ]
    with transaction.atomic():
        # Earlier results (e.g. from an older model) are replaced only now, in one step.
        photo.faces.all().delete()
        FaceResult.objects.bulk_create(rows)
        photo.error = ""
        photo.width, photo.height = analysis.width, analysis.height
        photo.model_version = version
        photo.analysed_at = timezone.now()
        photo.save(update_fields=["error", "width", "height", "model_version", "analysed_at"])


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


def retry_photo(photo: Photo) -> Photo:
    """Queue a failed photo again."""
    if photo.status != PhotoStatus.FAILED:
        raise PhotoActionError(f"Only failed photos can be retried; this one is {photo.status}.")
    if not photo.image:
        raise PhotoActionError("The original photo is no longer stored, so it cannot be retried.")
    _requeue([photo.pk])
    photo.refresh_from_db()
    return photo


def _requeue(ids: list[int]) -> None:
    Photo.objects.filter(pk__in=ids).update(
        status=PhotoStatus.QUEUED, error="", attempts=0, heartbeat_at=None
    )
    transaction.on_commit(lambda: [enqueue_analysis(pk) for pk in ids])


def reanalysable_photos(session: Session):
    """(photos whose original is stored and not in analysis now, the other finished photos).

    Only an original can be analysed again: a blurred copy hides the faces, a deleted one is gone.
    """
    photos = session.photos.exclude(status__in=[PhotoStatus.QUEUED, PhotoStatus.ANALYSING])
    stored = photos.filter(image_state=ImageState.ORIGINAL).exclude(image="").exclude(image=None)
    return stored, photos.exclude(pk__in=stored.values("pk"))


def reanalyse_session(session: Session) -> tuple[int, int]:
    """Queue every photo whose original is still stored for analysis by the active model.

    Existing results stay, with their model version, until the new ones replace them. Returns
    (queued, skipped): photos whose original was deleted or blurred cannot be analysed again.
    """
    stored, others = reanalysable_photos(session)
    ids = list(stored.values_list("pk", flat=True))
    skipped = others.count()
    _requeue(ids)
    return len(ids), skipped


# --- aggregates ---------------------------------------------------------------------------------


def summarize(state_counts: dict[str, int], photo_counts: dict[str, int]) -> dict:
    """The summary fields of the API contract from face counts per state and photo counts."""
    states = list(STATES) + sorted(set(state_counts) - set(STATES))
    faces = sum(state_counts.values())
    counts = {state: state_counts.get(state, 0) for state in states}
    shares = {state: (round(counts[state] / faces, 4) if faces else None) for state in states}
    return {
        "faces": faces,
        "counts": counts,
        "shares": shares,
        "engagement_index": shares[ENGAGED],
        "photos": {status: photo_counts.get(status, 0) for status in PhotoStatus.values},
    }


def _state_counts(faces, key: str) -> dict[int, Counter]:
    """Faces per state grouped by `key` (a FaceResult field path), in one query."""
    counts: dict[int, Counter] = defaultdict(Counter)
    for group, state, n in faces.values_list(key, "state").annotate(n=Count("id")).order_by():
        counts[group][state] += n
    return counts


def session_summaries(session_ids: Iterable[int]) -> dict[int, dict]:
    """Summaries of many sessions in two queries."""
    ids = list(session_ids)
    states = _state_counts(
        FaceResult.objects.filter(photo__session_id__in=ids), "photo__session_id"
    )
    statuses: dict[int, Counter] = defaultdict(Counter)
    photo_rows = (
        Photo.objects.filter(session_id__in=ids)
        .values_list("session_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for session_id, status, n in photo_rows:
        statuses[session_id][status] += n
    return {pk: summarize(states[pk], statuses[pk]) for pk in ids}


def session_summary(session: Session) -> dict:
    return session_summaries([session.pk])[session.pk]


def model_versions_used(session_ids: Iterable[int]) -> dict[int, list[dict]]:
    """Per session, the model versions its current results come from."""
    used: dict[int, list[dict]] = defaultdict(list)
    rows = (
        Photo.objects.filter(session_id__in=list(session_ids), model_version__isnull=False)
        .values_list("session_id", "model_version_id", "model_version__name")
        .distinct()
        .order_by("session_id", "model_version_id")
    )
    for session_id, version_id, name in rows:
        used[session_id].append({"id": version_id, "name": name})
    return used


def classroom_sessions(classroom: Classroom, after=None, before=None):
    sessions = classroom.sessions.all()
    if after:
        sessions = sessions.filter(started_at__gte=after)
    if before:
        sessions = sessions.filter(started_at__lte=before)
    return sessions.order_by("started_at", "id")


def classroom_trends(classroom: Classroom, after=None, before=None) -> list[dict]:
    """One row per session (oldest first) with the summary fields, for charts and the API."""
    sessions = list(classroom_sessions(classroom, after, before))
    summaries = session_summaries(s.pk for s in sessions)
    return [
        {
            "session": s.pk,
            "title": s.title,
            "started_at": s.started_at,
            "kind": s.kind,
            **summaries[s.pk],
        }
        for s in sessions
    ]


def session_timeline(session: Session) -> dict:
    """Engagement photo by photo: by EXIF capture time if every photo has one, else upload order."""
    photos = list(session.photos.filter(status=PhotoStatus.DONE).order_by("uploaded_at", "id"))
    by_capture = bool(photos) and all(p.captured_at for p in photos)
    if by_capture:
        photos.sort(key=lambda p: (p.captured_at, p.pk))
    counts = _state_counts(FaceResult.objects.filter(photo__in=photos), "photo_id")
    points = []
    for index, photo in enumerate(photos, start=1):
        summary = summarize(counts[photo.pk], {})
        points.append(
            {
                "photo": photo.pk,
                "position": index,
                "time": photo.captured_at if by_capture else None,
                "faces": summary["faces"],
                "shares": summary["shares"],
                "engagement_index": summary["engagement_index"],
            }
        )
    return {"order": "capture time" if by_capture else "upload order", "points": points}


def compare_kinds(trends: list[dict]) -> dict[str, dict]:
    """In-person vs online: the summary of all faces of each kind of session."""
    states: dict[str, Counter] = defaultdict(Counter)
    sessions: Counter = Counter()
    for row in trends:
        sessions[row["kind"]] += 1
        states[row["kind"]].update(row["counts"])
    return {
        kind: {
            **summarize(states[kind], {}),
            "sessions": sessions[kind],
            "label": SessionKind(kind).label,
        }
        for kind in sessions
    }


# --- exports -----------------------------------------------------------------------------------


def _cell(value):
    # A spreadsheet runs cells that start with these characters as formulas.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


def _csv(header: list[str], rows: Iterable[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()


def sessions_csv(classroom: Classroom, after=None, before=None) -> str:
    """Per-session aggregates of a classroom: counts, shares, engagement index, photos."""
    trends = classroom_trends(classroom, after, before)
    states = list(STATES) + sorted({s for row in trends for s in row["counts"]} - set(STATES))
    versions = model_versions_used(row["session"] for row in trends)
    header = ["session_id", "title", "started_at", "kind", "faces", "engagement_index"]
    header += [f"count_{s}" for s in states] + [f"share_{s}" for s in states]
    header += [f"photos_{status}" for status in PhotoStatus.values] + ["model_versions"]
    rows = (
        [row["session"], row["title"], row["started_at"], row["kind"], row["faces"]]
        + [row["engagement_index"]]
        + [row["counts"].get(s, 0) for s in states]
        + [row["shares"].get(s) for s in states]
        + [row["photos"][status] for status in PhotoStatus.values]
        + ["; ".join(v["name"] for v in versions[row["session"]])]
        for row in trends
    )
    return _csv(header, rows)


def faces_csv(sessions) -> str:
    """One row per detected face: box, state, label, probabilities. Never an image."""
    faces = list(
        FaceResult.objects.filter(photo__session__in=sessions)
        .select_related("photo__session", "model_version")
        .order_by("photo__session__started_at", "photo__session_id", "photo_id", "id")
    )
    classes = sorted({c for face in faces for c in face.probabilities})
    header = ["session_id", "session_title", "session_started_at", "photo_id", "captured_at"]
    header += ["x", "y", "w", "h", "score", "label", "state", "model_version"]
    header += [f"p_{c}" for c in classes]
    rows = (
        [
            face.photo.session_id,
            face.photo.session.title,
            face.photo.session.started_at,
            face.photo_id,
            face.photo.captured_at,
            face.x,
            face.y,
            face.w,
            face.h,
            round(face.score, 4),
            face.label,
            face.state,
            face.model_version.name if face.model_version else "",
        ]
        + [face.probabilities.get(c) for c in classes]
        for face in faces
    )
    return _csv(header, rows)


# --- deletion -----------------------------------------------------------------------------------


def delete_photo_file(name: str) -> None:
    """Remove a stored image once the row that pointed at it is gone for good."""
    if name:
        Photo._meta.get_field("image").storage.delete(name)
