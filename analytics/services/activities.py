"""Lesson activities pooled across sessions: corrected shares per activity over a date range.

Design: a pool depends on the date range a page asks for, so it cannot be stored per session
ahead of time without approximating how sessions combine. It is computed when read, from the
faces themselves, with ml.quantify.quantify_parts: one part per (activity, model version), each
corrected with that version's calibration, and the parts combined weighted by their faces. PACC
(the default method) needs numpy only, so this runs in the web process without QuaPy or torch
(tests/ml/test_quantify.py checks that) and needs no worker for a page read.
"""

from collections import defaultdict

from classifier.models import ModelVersion
from ml.labels import ENGAGED
from ml.quantify import MIN_FACES, Quantification, change, quantify_parts

from ..models import Classroom, FaceResult
from .aggregates import HIDDEN_MIN_FACES, classroom_sessions, rounded_corrected
from .quantification import version_part

# Pooled on every read: PACC is the method that needs no torch (see the module docstring).
POOL_METHOD = "pacc"


def activity_pools(classroom: Classroom, after=None, before=None) -> list[dict]:
    """Per activity (the classroom's list order, then any no longer listed), over the sessions
    started in the range: faces, sessions, raw and corrected shares with 90 % ranges, and the
    model versions whose faces these are. Corrected fields are None when a version has no
    calibration; where per-face detail is hidden they follow the session rules (whole
    percents, none below MIN_FACES; raw shares none below HIDDEN_MIN_FACES)."""
    rows = list(
        FaceResult.objects.filter(photo__session__in=classroom_sessions(classroom, after, before))
        .exclude(photo__activity="")
        .values_list(
            "photo__activity", "photo__session_id", "model_version_id", "probabilities", "state"
        )
        .order_by("id")
    )
    versions = ModelVersion.objects.in_bulk({row[2] for row in rows if row[2]})
    grouped: dict[str, dict] = defaultdict(lambda: {"sessions": set(), "parts": defaultdict(list)})
    for activity, session_id, version_id, probabilities, state in rows:
        grouped[activity]["sessions"].add(session_id)
        grouped[activity]["parts"][version_id].append(_Face(probabilities, state))
    order = list(classroom.activities) + sorted(set(grouped) - set(classroom.activities))
    return [
        _pool(name, grouped[name], versions, classroom.hide_face_detail)
        for name in order
        if name in grouped
    ]


class _Face:
    """What quantification.version_part reads of a face."""

    __slots__ = ("probabilities", "state")

    def __init__(self, probabilities, state):
        self.probabilities, self.state = probabilities, state


def _pool(name: str, group: dict, versions: dict, hidden: bool) -> dict:
    parts = sorted(group["parts"].items(), key=lambda item: item[0] or 0)
    n = sum(len(faces) for _, faces in parts)
    calibrated = all(pk in versions and versions[pk].calibration for pk, _ in parts)
    quantification = None
    if calibrated:
        quantification, _ = quantify_parts(
            [version_part(versions[pk], faces) for pk, faces in parts], POOL_METHOD
        )
    raw_counts = defaultdict(int)
    for _, faces in parts:
        for face in faces:
            raw_counts[face.state] += 1
    corrected = {
        "corrected_shares": quantification.to_json()["shares"] if quantification else None,
        "intervals": quantification.to_json()["intervals"] if quantification else None,
        "method": POOL_METHOD if quantification else None,
    }
    raw = {state: round(count / n, 4) for state, count in raw_counts.items()}
    if hidden:
        corrected = rounded_corrected(corrected, n)
        raw = raw if n >= HIDDEN_MIN_FACES else None
    return {
        "activity": name,
        "faces": n,
        "sessions": len(group["sessions"]),
        "shares": raw,
        **corrected,
        "enough_faces": n >= MIN_FACES,
        "model_versions": [
            {"id": pk, "name": versions[pk].name if pk in versions else None, "faces": len(faces)}
            for pk, faces in parts
        ],
    }


def compare_activities(pools: list[dict]) -> list[dict]:
    """Each activity with corrected shares against the one with the most faces (the
    reference), by the trend's rule (ml.quantify.change on their corrected engagement and 90 %
    ranges): `verdict` "up"/"down" beyond doubt, else "same" (ranges overlap) or "too_few"
    (under MIN_FACES faces in either), with the difference and each range's half-width in
    points."""
    usable = [p for p in pools if p["corrected_shares"]]
    if len(usable) < 2:
        return []
    reference = max(usable, key=lambda p: p["faces"])
    rows = []
    for pool in usable:
        if pool is reference:
            continue
        if not (pool["enough_faces"] and reference["enough_faces"]):
            verdict = "too_few"
        else:
            verdict = change(_as_quantification(reference), _as_quantification(pool)) or "same"
        rows.append(
            {
                "activity": pool["activity"],
                "reference": reference["activity"],
                "verdict": verdict,
                "difference": pool["corrected_shares"][ENGAGED]
                - reference["corrected_shares"][ENGAGED],
                "half_width": _half_width(pool),
                "reference_half_width": _half_width(reference),
                "sessions": pool["sessions"],
                "faces": pool["faces"],
                "sentence": _sentence(pool, reference, verdict),
            }
        )
    return rows


def _half_width(pool: dict) -> float:
    low, high = pool["intervals"][ENGAGED]
    return (high - low) / 2


def _as_quantification(pool: dict) -> Quantification:
    states = list(pool["corrected_shares"])
    return Quantification.from_json(
        {
            "method": pool["method"], "states": states, "faces": pool["faces"], "level": 0.9,
            "raw": dict.fromkeys(states, 0.0), "shares": pool["corrected_shares"],
            "intervals": pool["intervals"],
        }
    )  # fmt: skip


def _sentence(pool: dict, reference: dict, verdict: str) -> str:
    """'Group work: engagement 12 points above direct teaching (±6 and ±5), 9 lessons, 640
    faces: beyond doubt.' — the same numbers the table shows."""
    difference = round(
        (pool["corrected_shares"][ENGAGED] - reference["corrected_shares"][ENGAGED]) * 100
    )
    where = "above" if difference > 0 else "below"
    size = f"{abs(difference)} points {where}" if difference else "the same as"
    lessons = f"{pool['sessions']} lesson{'s' if pool['sessions'] != 1 else ''}"
    verdicts = {
        "up": "beyond doubt (the 90 % ranges do not overlap)",
        "down": "beyond doubt (the 90 % ranges do not overlap)",
        "same": "not beyond doubt (the 90 % ranges overlap)",
        "too_few": f"not yet conclusive (each needs {MIN_FACES} faces)",
    }
    return (
        f"{pool['activity'].capitalize()}: engagement {size} {reference['activity']} "
        f"(±{_half_width(pool) * 100:.0f} against ±{_half_width(reference) * 100:.0f} points), "
        f"{lessons}, {pool['faces']} faces: {verdicts[verdict]}."
    )
