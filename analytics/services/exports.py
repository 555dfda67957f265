"""Exports: CSV of per-session aggregates and of per-face results (never an image); no
per-face row of a classroom that hides per-face detail."""

import csv
import io
from collections.abc import Iterable
from datetime import datetime

from ml.labels import STATES

from ..choices import PhotoStatus
from ..models import Classroom, FaceResult
from .activities import activity_pools
from .aggregates import classroom_trends, model_versions_used


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


def _corrected(row: dict, state: str) -> list:
    """The corrected share of a state and its interval bounds (blank where uncorrected)."""
    if not row["corrected_shares"]:
        return [None, None, None]
    return [row["corrected_shares"].get(state), *row["intervals"].get(state, (None, None))]


def sessions_csv(classroom: Classroom, after=None, before=None) -> str:
    """Per-session aggregates of a classroom: counts, raw shares, engagement index, photos,
    and the corrected shares with their 90 % interval bounds (empty where uncorrected). Shares
    and the index are in percent (0-100) as the pages show them: the header says so (`_pct`)."""
    trends = classroom_trends(classroom, after, before)
    states = list(STATES) + sorted({s for row in trends for s in row["counts"]} - set(STATES))
    versions = model_versions_used(row["session"] for row in trends)
    header = ["session_id", "title", "started_at", "kind", "faces", "engagement_index_pct"]
    header += [f"count_{s}" for s in states] + [f"share_{s}_pct" for s in states]
    header += ["correction_method", "enough_faces"]
    for s in states:
        header += [f"corrected_{s}_pct", f"corrected_{s}_low_pct", f"corrected_{s}_high_pct"]
    header += [f"photos_{status}" for status in PhotoStatus.values] + ["model_versions"]
    header += ["counts_rounded"]  # per-face detail hidden: aggregates.without_exact_counts
    rows = (
        [row["session"], row["title"], row["started_at"], row["kind"], row["faces"]]
        + [_percent(row["engagement_index"])]
        + [row["counts"].get(s, 0) for s in states]
        + [_percent(row["shares"].get(s)) for s in states]
        + [row["method"], row["enough_faces"] if row["method"] else None]
        + [_percent(value) for s in states for value in _corrected(row, s)]
        + [row["photos"][status] for status in PhotoStatus.values]
        + ["; ".join(v["name"] for v in versions[row["session"]])]
        + [row["counts_rounded"]]
        for row in trends
    )
    return _csv(header, rows)


def activities_csv(classroom: Classroom, after=None, before=None) -> str:
    """Per activity pooled across the range's sessions (activities.activity_pools): lessons,
    faces, the correction method, then each state's raw and corrected share with its 90 %
    range, in percent (0-100) as the pages show them: the header says so (`_pct`)."""
    pools = activity_pools(classroom, after, before)
    states = list(STATES)
    header = ["activity", "sessions", "faces", "correction_method", "enough_faces"]
    header += [f"share_{s}_pct" for s in states]
    for s in states:
        header += [f"corrected_{s}_pct", f"corrected_{s}_low_pct", f"corrected_{s}_high_pct"]
    rows = (
        [row["activity"], row["sessions"], row["faces"], row["method"], row["enough_faces"]]
        + [_percent((row["shares"] or {}).get(s)) for s in states]
        + [_percent(value) for s in states for value in _corrected(row, s)]
        for row in pools
    )
    return _csv(header, rows)


def _percent(share: float | None) -> float | None:
    return None if share is None else round(share * 100, 1)


class FaceDetailHidden(Exception):  # noqa: N818
    """Per-face rows asked for sessions of a classroom that hides per-face detail."""


def faces_csv(sessions) -> str:
    """One row per detected face: its photo (file name as uploaded, EXIF capture time, upload
    time), box, state, label, probabilities. Never an image.

    Raises FaceDetailHidden when a session's classroom hides per-face detail.
    """
    hidden = Classroom.objects.filter(sessions__in=sessions, hide_face_detail=True).first()
    if hidden is not None:
        raise FaceDetailHidden(
            f"“{hidden}” hides per-face detail (a setting on its classroom page), so its exports "
            "hold class-level aggregates only: export the sessions CSV instead."
        )
    faces = list(
        FaceResult.objects.filter(photo__session__in=sessions)
        .select_related("photo__session", "model_version")
        .order_by("photo__session__started_at", "photo__session_id", "photo_id", "id")
    )
    classes = sorted({c for face in faces for c in face.probabilities})
    header = ["session_id", "session_title", "session_started_at", "photo_id", "photo_file"]
    header += ["captured_at", "uploaded_at"]
    header += ["x", "y", "w", "h", "score", "label", "state", "model_version"]
    header += [f"p_{c}" for c in classes]
    rows = (
        [
            face.photo.session_id,
            face.photo.session.title,
            face.photo.session.started_at,
            face.photo_id,
            face.photo.original_name,
            face.photo.captured_at,
            face.photo.uploaded_at,
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
