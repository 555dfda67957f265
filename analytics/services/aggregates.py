"""Aggregates: per-session summaries, trends across sessions, timelines within one, kinds."""

from collections import Counter, defaultdict
from collections.abc import Iterable

from django.db.models import Count

from ml.labels import STATES
from ml.quantify import MIN_FACES, enough_faces

from ..choices import PhotoStatus, SessionKind
from ..models import Classroom, FaceResult, Photo, Session
from .quantification import corrected_fields, engagement_change

ENGAGED = "Engaged"


ENGAGEMENT_DEFINITION = (
    "The engagement index is the share of detected faces whose estimated state is Engaged "
    "(expressions read as happy or surprised): Engaged faces ÷ all faces, shown from 0 to 100 %."
)


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


# With per-face detail hidden, a session's exact counts per state still give faces away: a
# session of one photo shows its faces' states, and so does the difference between the summary
# before and after one more photo (or a re-analysis). Suppressing only small counts would leave
# that difference readable in large ones (12 -> 13 Engaged), so every count is rounded to a
# multiple of HIDDEN_COUNT_BASE instead: one face more moves it by 0 or 5, never by 1 (the
# rounding official statistics use for small areas). Shares and the engagement index then come
# from the rounded counts and their total (four decimals of an exact share would give the count
# back), and are left out, with the corrected shares, below HIDDEN_MIN_FACES faces, where
# rounded counts of a few faces would mislead more than inform. Corrected shares are shown, to
# whole percents, only from MIN_FACES faces (below it the page greys them as too few to
# conclude anyway). A count that crosses a rounding boundary still moves: by 5, which says
# less than a change of one face but not nothing; a teacher who needs none keeps photos few
# and sessions large.
HIDDEN_COUNT_BASE = 5
HIDDEN_MIN_FACES = 10
COUNTS_ROUNDED_NOTE = (
    f"Per-face detail is hidden, so counts are rounded to multiples of {HIDDEN_COUNT_BASE}, "
    f"shares are shown from {HIDDEN_MIN_FACES} faces and corrected shares from {MIN_FACES}: a "
    "count moves in steps of 5, never by a single face."
)


def without_exact_counts(summary: dict) -> dict:
    """A session summary as a classroom hiding per-face detail shows it (see above)."""
    faces = summary["faces"]
    counts = {
        state: HIDDEN_COUNT_BASE * int(n / HIDDEN_COUNT_BASE + 0.5)
        for state, n in summary["counts"].items()
    }
    counted = sum(counts.values())  # over the rounded total: shares stay within 0 and 1
    shares = {
        state: (round(n / counted, 4) if faces >= HIDDEN_MIN_FACES else None)
        for state, n in counts.items()
    }
    corrected = {"corrected_shares": None, "intervals": None, "method": None}
    if summary["corrected_shares"] and faces >= MIN_FACES:
        corrected = {
            "corrected_shares": {k: round(v, 2) for k, v in summary["corrected_shares"].items()},
            "intervals": {k: [round(b, 2) for b in v] for k, v in summary["intervals"].items()},
            "method": summary["method"],
        }
    return {
        **summary,
        "counts": counts,
        "shares": shares,
        "engagement_index": shares.get(ENGAGED),
        **corrected,
        "counts_rounded": True,
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
    stored = {
        pk: (quantification, hidden)
        for pk, quantification, hidden in Session.objects.filter(pk__in=ids).values_list(
            "pk", "quantification", "classroom__hide_face_detail"
        )
    }
    used = model_versions_used(ids)
    summaries = {}
    for pk in ids:
        quantification, hidden = stored.get(pk, (None, False))
        summary = {
            **summarize(states[pk], statuses[pk]),
            **corrected_fields(quantification),
            "model_versions": used.get(pk, []),
            "counts_rounded": False,
        }
        summaries[pk] = without_exact_counts(summary) if hidden else summary
    return summaries


def session_summary(session: Session) -> dict:
    return session_summaries([session.pk])[session.pk]


def model_versions_used(session_ids: Iterable[int]) -> dict[int, list[dict]]:
    """Per session, the model versions whose faces its current results are, each with its
    faces and share of the session's faces, in one query."""
    used: dict[int, list[dict]] = defaultdict(list)
    rows = (
        FaceResult.objects.filter(photo__session_id__in=list(session_ids))
        .exclude(model_version=None)
        .values_list("photo__session_id", "model_version_id", "model_version__name")
        .annotate(n=Count("id"))
        .order_by("photo__session_id", "model_version_id")
    )
    for session_id, version_id, name, n in rows:
        used[session_id].append({"id": version_id, "name": name, "faces": n})
    for versions in used.values():
        total = sum(v["faces"] for v in versions)
        for version in versions:
            version["share"] = round(version["faces"] / total, 4)
    return used


def combined_versions(used: dict[int, list[dict]]) -> list[dict]:
    """The model versions of several sessions together, each with its share of all faces."""
    faces: Counter = Counter()
    names = {}
    for versions in used.values():
        for version in versions:
            faces[version["id"]] += version["faces"]
            names[version["id"]] = version["name"]
    total = sum(faces.values())
    return [
        {"id": pk, "name": names[pk], "faces": faces[pk],
         "share": round(faces[pk] / total, 4) if total else None}
        for pk in sorted(names)
    ]  # fmt: skip


def classroom_sessions(classroom: Classroom, after=None, before=None):
    sessions = classroom.sessions.all()
    if after:
        sessions = sessions.filter(started_at__gte=after)
    if before:
        sessions = sessions.filter(started_at__lte=before)
    return sessions.order_by("started_at", "id")


def classroom_trends(classroom: Classroom, after=None, before=None) -> list[dict]:
    """One row per session (oldest first) with the summary fields, for charts and the API.

    `change` is "up"/"down" when the corrected engagement moved beyond doubt since the last
    session before it with corrected shares (ml.quantify.change), else None: a session without
    analysed faces in between does not hide a change.
    """
    sessions = list(classroom_sessions(classroom, after, before))
    summaries = session_summaries(s.pk for s in sessions)
    rows, earlier = [], None
    for s in sessions:
        rows.append(
            {
                "session": s.pk,
                "title": s.title,
                "started_at": s.started_at,
                "kind": s.kind,
                **summaries[s.pk],
                "enough_faces": bool(s.quantification and s.quantification["enough_faces"]),
                "change": engagement_change(earlier, s.quantification),
            }
        )
        earlier = s.quantification or earlier
    return rows


# What the dashboard's headline says of the latest session against the analysed one before.
CHANGE_VERDICTS = {
    "up": "Up beyond doubt",
    "down": "Down beyond doubt",
    "same": "No change beyond doubt",
    "too_few": "Too few faces to conclude",
    "uncorrected": "Cannot conclude: shares uncorrected",
}


def dashboard_headline(analysed: list[dict]) -> dict:
    """The dashboard's numbers, shown before any chart: faces and engagement over the range, the
    latest session, how its engagement moved since the analysed session before it, and the
    model versions whose faces these are (`model_versions`, each with its share of faces).

    The engagement over the range is never a pool of raw counts from several models: when every
    session has corrected shares it is their counts-weighted mean (each session already
    corrected per model version), `corrected` is True and `interval` holds the same weighted
    mean of the sessions' bounds. That interval is conservative on purpose: sessions analysed
    by one model share its calibration's error, so they are not independent, and a weighted sum
    of bounds is at least as wide as the interval of any correlation between them. Otherwise
    the raw index is shown with `corrected` False.
    """
    faces = sum(row["faces"] for row in analysed)
    corrected = bool(analysed) and all(row["corrected_shares"] for row in analysed)
    if corrected:
        weights = [row["faces"] / faces for row in analysed]
        engagement = sum(
            w * r["corrected_shares"][ENGAGED] for w, r in zip(weights, analysed, strict=True)
        )
        interval = [
            round(
                sum(
                    w * r["intervals"][ENGAGED][end] for w, r in zip(weights, analysed, strict=True)
                ),
                4,
            )
            for end in (0, 1)
        ]
    else:
        # Sessions whose index is withheld (per-face detail hidden, few faces) add no counts.
        counted = [row for row in analysed if row["engagement_index"] is not None]
        total = sum(sum(row["counts"].values()) for row in counted)
        engaged = sum(row["counts"].get(ENGAGED, 0) for row in counted)
        engagement, interval = (engaged / total if total else None), None
    return {
        "sessions": len(analysed),
        "faces": faces,
        "engagement_index": engagement,
        "corrected": corrected,
        "interval": interval,
        "model_versions": combined_versions({r["session"]: r["model_versions"] for r in analysed}),
        "latest": analysed[-1] if analysed else None,
        "change": engagement_verdict(*analysed[-2:]) if len(analysed) >= 2 else None,
    }


def engagement_verdict(before: dict, after: dict) -> dict:
    """How the engagement index moved between two trend rows, by the rule the engagement chart
    marks (ml.quantify.change on the corrected shares and their 90 % ranges): `verdict` is a
    key of CHANGE_VERDICTS, `label` its words; the rows give the numbers."""
    stored = dict(
        Session.objects.filter(pk__in=[before["session"], after["session"]]).values_list(
            "pk", "quantification"
        )
    )
    previous, current = stored[before["session"]], stored[after["session"]]
    if not (enough_faces(before["faces"]) and enough_faces(after["faces"])):
        verdict = "too_few"
    elif not (previous and current):
        verdict = "uncorrected"
    else:
        verdict = engagement_change(previous, current) or "same"
    return {
        "verdict": verdict,
        "label": CHANGE_VERDICTS[verdict],
        "before": before,
        "after": after,
        "min_faces": MIN_FACES,
    }


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
    """In-person vs online: the summary of all faces of each kind of session (of those whose
    index is shown: not a small session of a classroom hiding per-face detail)."""
    states: dict[str, Counter] = defaultdict(Counter)
    sessions: Counter = Counter()
    for row in trends:
        if row["engagement_index"] is None:
            continue
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
