"""Photo analysis: detect and classify every face of a photo with the active model, store
the results, apply retention; retry and re-analysis. Runs through edumood_site.work."""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from classifier.services import active_model_version, load_classifier
from edumood_site.work import WorkCancelled, perform

from ..choices import ImageState, PhotoStatus, SessionKind
from ..models import FaceResult, Photo, Session
from .consent import apply_retention
from .quantification import quantify_session
from .uploads import publish_staged

logger = logging.getLogger(__name__)


class AnalysisError(Exception):
    """A photo that cannot be analysed for a reason the teacher can act on."""

    plain = True  # a failed photo shows the message alone (Photo.failure_reason)


class PhotoActionError(Exception):
    """An action that does not apply to the photo in its current state."""


class ClaimLost(Exception):  # noqa: N818  (a signal, not an error)
    """Another worker took the photo over while this one analysed it: its results are not ours
    to store (the photo may already be done, its original blurred)."""


def analyse_photo(photo_id: int, *, soft_time_limit: float | None = None) -> None:
    """Claim a photo, detect and classify all its faces, store the results, apply retention;
    then store the session's corrected shares (quantify_session).

    Idempotent: a finished photo, or one another worker is analysing, is left alone; failures
    mark the photo failed with the reason (edumood_site.work's lifecycle).
    """
    rows = Photo.objects.select_related("session__classroom")
    try:
        perform(rows, photo_id, _analyse_and_store, soft_time_limit=soft_time_limit)
    except Photo.DoesNotExist:  # deleted between its claim's update and re-read
        logger.info("Photo %s was deleted during its analysis", photo_id)
        return
    session_id = rows.filter(pk=photo_id).values_list("session_id", flat=True).first()
    if session_id is None:
        return
    try:
        quantify_session(session_id)
    except Exception:
        # The photo's results are stored; the session's shares are corrected again by its next
        # analysis.
        logger.exception("Quantifying session %s failed", session_id)


def _analyse_and_store(photo: Photo) -> None:
    try:
        version, analysis = _analyse(photo)
        _store_results(photo, version, analysis)
    except ClaimLost:
        _stop_if_deleted(photo)
        logger.warning("Photo %s was taken over by another worker; results dropped", photo.pk)
        return
    except Exception:
        _stop_if_deleted(photo)
        raise
    try:
        # Before "done": a page that sees the photo done must get the final image.
        apply_retention(photo)
    except Exception:
        _stop_if_deleted(photo)
        # The results are stored; the original stays until the setting is applied again.
        logger.exception("Retention for photo %s failed", photo.pk)


def _stop_if_deleted(photo: Photo) -> None:
    """A teacher may delete a session (or classroom) while its photos are analysed: its file
    and row go, and what failed next (reading the file, storing the results) is no error. The
    analysis stops as cancelled, with nothing left to record."""
    if not Photo.objects.filter(pk=photo.pk).exists():
        logger.info("Photo %s was deleted during its analysis", photo.pk)
        raise WorkCancelled() from None


def _analyse(photo: Photo):
    from ml.detect import get_detector
    from ml.photo import DETECT_MAX_SIDE, analyse_image
    from ml.safety import open_image

    version = active_model_version()
    if version is None:
        raise AnalysisError("No active model version: an administrator must promote one; retry.")
    if not photo.image:
        raise AnalysisError("The original photo is no longer stored, so it cannot be analysed.")
    # The upload that stored it died between its commit and the rename: finish the rename.
    publish_staged(photo.image.name)
    with photo.image.open("rb") as handle:
        data = handle.read()
    # A huge photo is reduced once, while decoding; the boxes still come in its own pixels.
    image = open_image(data, settings.EDUMOOD_MAX_IMAGE_PIXELS, max_side=DETECT_MAX_SIDE)
    classifier = load_classifier(version)
    session = photo.session
    # An online session's photos are meeting screenshots: their faces are found tile by tile
    # (the classroom's mode still applies to a screenshot without a grid of tiles).
    detector = get_detector(
        mode=session.classroom.detection_mode, gallery=session.kind == SessionKind.ONLINE
    )
    return version, analyse_image(image, classifier, detector)


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
        # Only while the claim is this run's: the row lock keeps a takeover out until commit.
        if not photo.held_claim().select_for_update().exists():
            raise ClaimLost
        # Earlier results (e.g. from an older model) are replaced only now, in one step.
        photo.faces.all().delete()
        FaceResult.objects.bulk_create(rows)
        photo.error = ""
        photo.width, photo.height = analysis.width, analysis.height
        photo.model_version = version
        photo.analysed_at = timezone.now()
        photo.save(update_fields=["error", "width", "height", "model_version", "analysed_at"])


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
    """Queue photos again; their owner's window sends them (Photo.dispatch)."""
    photos = Photo.objects.filter(pk__in=ids)
    owners = set(photos.order_by().values_list(Photo.FAIR_SHARE, flat=True).distinct())
    photos.update(status=PhotoStatus.QUEUED, error="", attempts=0, heartbeat_at=None, sent_at=None)
    transaction.on_commit(lambda: [Photo.dispatch(owner) for owner in owners])


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
