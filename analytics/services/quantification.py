"""Corrected state shares of a session (ml.quantify), computed in the worker and stored.

Computing them imports QuaPy, which loads torch, so only the inference worker does it, after a
photo's analysis; pages and the API read the stored JSON (numpy only).
"""

from collections import defaultdict

import numpy as np
from django.db import transaction
from django.db.models import Count, Max, Sum

from ml.quantify import (
    MIN_FACES,
    Calibration,
    Quantification,
    change,
    quantify_parts,
    state_posteriors,
)

from ..models import FaceResult, Session

# Computations of one session's shares before leaving the write to the analyses still storing
# faces in it.
COMPUTE_TRIES = 3

CORRECTION_NOTE = (
    "Corrected shares adjust the raw count of each state for the mistakes this model is known "
    "to make (measured on labelled validation faces, e.g. Bored faces read as Neutral), and "
    "each comes with a 90 % range that accounts for both the number of faces and the "
    "uncertainty of those error rates."
)


def quantify_session(session_id: int) -> dict | None:
    """Store (and return) the quantification of a session's faces, or None when there is none.

    The faces of each model version are corrected with that version's calibration and the
    results combined, counts-weighted (ml.quantify.quantify_parts); `versions` in the result
    keeps each version's faces and own corrected shares. So a session keeps corrected numbers
    when the active model changes and new photos come in, with no need for its originals. No
    faces, or a version without a calibration, leave the shares uncorrected (None).

    Computed outside any transaction (the first call imports QuaPy, seconds; on SQLite a
    transaction that writes locks the whole database), then written only if the faces are still
    those it computed from; otherwise computed again, a few times at most: faces that keep
    changing are being stored by other analyses, each of which quantifies the session after.
    """
    result = None
    for _ in range(COMPUTE_TRIES):
        seen = _faces_fingerprint(session_id)
        result = _quantify_faces(session_id)
        with transaction.atomic():  # a short lock: one check and one write
            # One writer at a time per session, so the check and the write see the same faces.
            session = Session.objects.select_for_update().filter(pk=session_id)
            if not list(session.values_list("pk", flat=True)):
                return None  # deleted meanwhile
            if _faces_fingerprint(session_id) == seen:
                session.update(quantification=result)
                return result
    return result


def _faces_fingerprint(session_id: int) -> dict:
    """What changes whenever a face of the session is added, replaced or deleted."""
    return FaceResult.objects.filter(photo__session_id=session_id).aggregate(
        count=Count("id"), last=Max("id"), total=Sum("id")
    )


def _quantify_faces(session_id: int) -> dict | None:
    faces = (
        FaceResult.objects.filter(photo__session_id=session_id)
        .select_related("model_version")
        .order_by("id")
    )
    by_version = defaultdict(list)
    for face in faces:
        by_version[face.model_version].append(face)
    if not by_version or not all(v is not None and v.calibration for v in by_version):
        return None
    versions = sorted(by_version, key=lambda v: v.pk)
    combined, each = quantify_parts(
        [version_part(version, by_version[version]) for version in versions]
    )
    return {
        **combined.to_json(),
        "versions": [
            {"id": v.pk, "name": v.name, "faces": q.faces, "shares": q.to_json()["shares"]}
            for v, q in zip(versions, each, strict=True)
        ],
    }


def version_part(version, faces) -> tuple:
    """(posteriors, predicted states, calibration) of one version's faces."""
    calibration = Calibration.from_json(version.calibration)
    classes = list(version.classes)
    probabilities = np.array([[f.probabilities.get(c, 0.0) for c in classes] for f in faces])
    posteriors = state_posteriors(probabilities, classes, version.state_mapping, calibration.states)
    return posteriors, [f.state for f in faces], calibration


def uncorrected_reason(quantification: dict | None, summary: dict, versions: list) -> str:
    """Why a session's summary shows no corrected shares, in words for its page ("" when it
    does); `versions` are the model versions its faces come from."""
    if summary["corrected_shares"]:
        return ""
    if quantification:  # stored, and left out of the summary (aggregates.without_exact_counts)
        return (
            f"per-face detail is hidden, and corrected shares of fewer than {MIN_FACES} faces "
            "could give single faces away"
        )
    if not summary["faces"]:
        return "no faces analysed yet"
    if not versions:
        return "its faces were stored without the model version that produced them"
    return (
        "a model version that analysed it has no measured error rates (calibration)"
        if len(versions) > 1
        else "the model version that analysed it has no measured error rates (calibration)"
    )


def corrected_fields(quantification: dict | None) -> dict:
    """The summary's corrected fields from a stored quantification (None when uncorrected)."""
    if not quantification:
        return {"corrected_shares": None, "intervals": None, "method": None}
    return {
        "corrected_shares": quantification["shares"],
        "intervals": quantification["intervals"],
        "method": quantification["method"],
    }


def engagement_change(previous: dict | None, current: dict | None) -> str | None:
    """ "up"/"down" when the corrected engagement moved beyond doubt between two sessions."""
    if not (previous and current):
        return None
    return change(Quantification.from_json(previous), Quantification.from_json(current))
