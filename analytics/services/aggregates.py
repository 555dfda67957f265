"""Aggregates: per-session summaries, trends across sessions, timelines within one, kinds."""

from collections import Counter, defaultdict
from collections.abc import Iterable

from django.db.models import Count, Q

from ml.labels import ENGAGED, STATES
from ml.quantify import MIN_FACES, enough_faces

from ..choices import PhotoStatus, SessionKind
from ..models import Classroom, FaceResult, Photo, Session
from .quantification import corrected_fields, engagement_change

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
    return {
        **summary,
        "counts": counts,
        "shares": shares,
        "engagement_index": shares.get(ENGAGED),
        **rounded_corrected(summary, faces),
        "counts_rounded": True,
    }


def rounded_corrected(corrected: dict, faces: int) -> dict:
    """Corrected fields as a classroom hiding per-face detail shows them (see above)."""
    if not (corrected["corrected_shares"] and faces >= MIN_FACES):
        return {"corrected_shares": None, "intervals": None, "method": None}
    return {
        "corrected_shares": {k: round(v, 2) for k, v in corrected["corrected_shares"].items()},
        "intervals": {k: [round(b, 2) for b in v] for k, v in corrected["intervals"].items()},
        "method": corrected["method"],
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
    previous = _previous_analysed(ids)
    summaries = {}
    for pk in ids:
        quantification, hidden = stored.get(pk, (None, False))
        summary = {
            **summarize(states[pk], statuses[pk]),
            **corrected_fields(quantification),
            "model_versions": used.get(pk, []),
            "counts_rounded": False,
        }
        if hidden:
            summary = without_exact_counts(summary)
        summaries[pk] = {**summary, **conclusion_meter(summary, previous.get(pk))}
    return summaries


def _previous_analysed(session_ids: list[int]) -> dict[int, dict]:
    """Per session, the session before it in its classroom (by start, as the trend orders
    them) with stored corrected shares, as its page shows it: the one the trend's rule compares
    it with (`title`, `faces`, `corrected_shares`, `intervals`). One query."""
    rows = (
        Session.objects.filter(classroom__sessions__in=session_ids)
        .filter(Q(quantification__isnull=False) | Q(pk__in=session_ids))
        .values_list(
            "pk", "classroom_id", "started_at", "title", "quantification",
            "classroom__hide_face_detail",
        )
        .order_by("classroom_id", "started_at", "pk")
        .distinct()
    )  # fmt: skip
    wanted, previous, last = set(session_ids), {}, {}
    for pk, classroom, _, title, quantification, hidden in rows:
        if pk in wanted and classroom in last:
            previous[pk] = last[classroom]
        if quantification:
            faces = quantification["faces"]
            corrected = corrected_fields(quantification)
            shown = rounded_corrected(corrected, faces) if hidden else corrected
            last[classroom] = {"title": title, "faces": faces, **shown}
    return previous


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
    key of CHANGE_VERDICTS, `label` its words, `meter` how many more faces the later session
    needs to conclude (conclusion_meter); the rows give the numbers."""
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
        "meter": conclusion_meter(after, before),
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


# --- the conclusion meter ----------------------------------------------------------------------
#
# What "conclude" means is the trend's rule (ml.quantify.change): a session's engagement moved
# beyond doubt since the analysed session before it when both have MIN_FACES faces and their
# 90 % ranges do not overlap. So the width a session's range needs is not a fixed number: it is
# the gap between its estimate and the near end of the earlier range (margin), which the
# estimate's own range must not reach. The meter asks how many faces would narrow the range's
# near side below that margin, by the range's growth as 1/sqrt(faces): n' = n * (side/margin)^2,
# assuming the estimate and the earlier range stay where they are. Scaling rather than
# simulation because the page and the poller need it at every read in the web process, which
# must not import QuaPy (torch); the stored range also holds the calibration's uncertainty,
# which more faces do not shrink, but a session's tens of faces dominate it (the calibration has
# thousands), and the meter is read again after every upload, so it corrects itself as it goes.
# It is computed from the numbers the page shows (rounded where per-face detail is hidden), so
# its words never disagree with them.


def conclusion_meter(current: dict, previous: dict | None) -> dict:
    """`faces_to_conclude`, `photos_to_conclude` and `conclusion` (words) of a session summary.

    `current` is the session's summary as shown; `previous` the analysed session before it
    (the one the trend compares it with: `title` and its shown `faces`, `corrected_shares` and
    `intervals`), or None for a first session. `faces_to_conclude` counts more faces in this
    session: 0 once it has what it needs (its comparison concludes, or waits on a session
    before it with too few faces), None where no number of its own faces would do (shares
    uncorrected, or its estimate inside the earlier range).
    """
    faces = current["faces"]
    short = max(0, MIN_FACES - faces)
    if not current["corrected_shares"]:
        if not (current["counts_rounded"] and faces and short):
            return _meter(None, current, "")
        return _meter(  # withheld, not uncorrected: see aggregates.without_exact_counts
            short,
            current,
            f"Not yet conclusive: corrected shares are shown from {MIN_FACES} faces.",
        )
    engagement, (low, high) = _engagement(current)
    shown = f"engagement {_pc(engagement)} (90 % range {_pc(low)}–{_pc(high)})"
    if previous is None:
        if not short:
            return _meter(0, current, f"Enough faces to compare with the next session: {shown}.")
        return _meter(
            short, current,
            f"Not yet conclusive: {shown} from {faces} faces; a session needs {MIN_FACES} "
            "before it can be compared beyond doubt.",
        )  # fmt: skip
    before = f"“{previous['title']}”"
    if previous["faces"] < MIN_FACES or not previous["corrected_shares"]:
        return _meter(
            short, current,
            f"Not yet conclusive: the session before, {before}, has {previous['faces']} faces, "
            f"fewer than the {MIN_FACES} a comparison needs (add photos to it there); {shown}.",
        )  # fmt: skip
    earlier, (earlier_low, earlier_high) = _engagement(previous)
    earlier_shown = f"{_pc(earlier)} ({_pc(earlier_low)}–{_pc(earlier_high)})"
    up = engagement >= earlier
    margin = engagement - earlier_high if up else earlier_low - engagement
    side = engagement - low if up else high - engagement
    if margin <= 0:
        return _meter(
            None, current,
            f"Not yet conclusive: {shown} lies within the range of {before}, {earlier_shown}, "
            "so more faces here alone cannot show a change beyond doubt.",
        )  # fmt: skip
    if side < margin and short:
        return _meter(
            short, current,
            f"Not yet conclusive: {shown} is clear of the range of {before}, {earlier_shown}, "
            f"but from {faces} faces; a session needs {MIN_FACES} before it can be compared "
            "beyond doubt.",
        )  # fmt: skip
    more = max(int(faces * (side / margin) ** 2) + 1 - faces, short) if side >= margin else 0
    if not more:
        return _meter(
            0, current,
            f"Conclusive: {shown} is {'up' if up else 'down'} beyond doubt since {before}, "
            f"{earlier_shown}: the ranges do not overlap.",
        )  # fmt: skip
    return _meter(
        more, current,
        f"Not yet conclusive: {shown} against {earlier_shown} for {before}. To tell them apart "
        f"beyond doubt, the range must stay {'above' if up else 'below'} "
        f"{_pc(earlier_high if up else earlier_low)}: {_points(margin)} points on that side "
        f"instead of {_points(side)}",
    )  # fmt: skip


def _engagement(summary: dict) -> tuple[float, tuple[float, float]]:
    low, high = summary["intervals"][ENGAGED]
    return summary["corrected_shares"][ENGAGED], (low, high)


def _meter(more: int | None, summary: dict, words: str) -> dict:
    """The meter's fields; `words` ending without a full stop are followed by the faces needed."""
    if more and summary["counts_rounded"]:  # counts move in fives there, so does this
        more = -(-more // HIDDEN_COUNT_BASE) * HIDDEN_COUNT_BASE
    done = summary["photos"].get("done", 0)
    photos = -(-more * done // summary["faces"]) if more and done and summary["faces"] else None
    if more and not words.endswith("."):
        words += "."
    if more:
        per_photo = f" at {summary['faces'] / done:.0f} faces per photo" if photos else ""
        photos_text = f" (about {photos} more photo{'s' if photos != 1 else ''}{per_photo})"
        words += f" About {more} more faces{photos_text if photos else ''} would be enough."
    return {"faces_to_conclude": more, "photos_to_conclude": photos, "conclusion": words}


def _pc(share: float) -> str:
    return f"{share * 100:.0f}%"


def _points(share: float) -> str:
    return f"{share * 100:.0f}"
