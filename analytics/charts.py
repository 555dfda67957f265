"""Plotly figures of the classroom dashboard, built from the aggregates in services.

Each function returns a figure as plain JSON (for `json_script`, drawn by figures.js) or None
when there is nothing to draw, so the page can say why instead of showing an empty frame. The
dicts are written directly: plotly.graph_objects' validation cost the dashboard a second.
"""

from django.utils import timezone

from ml.labels import OTHER_COLOUR, STATE_COLOURS, STATES

from .choices import SessionKind
from .services.aggregates import ENGAGED

# Titles are the cards' HTML headings (they wrap on a phone and Plotly's toolbar never covers
# them); every share is on one 0-100 % scale; sessions sit on a category axis, one point each.
LAYOUT = {
    "margin": {"l": 55, "r": 15, "t": 30, "b": 40},
    "legend": {"orientation": "h", "y": -0.18, "font": {"size": 14}},
    "font": {"size": 13},
    "height": 380,
    "paper_bgcolor": "#fff",
    "plot_bgcolor": "#fff",
    "hovermode": "closest",
}
GRID = {"gridcolor": "#e3e7ee", "zeroline": False, "automargin": True}
SHARE_AXIS = GRID | {"tickformat": ".0%", "range": [0, 1.02], "title": {"text": "Share of faces"}}
SESSION_AXIS = GRID | {"type": "category"}
INDEX_LINE = {"color": "#152043", "width": 4}
# The engagement index is the Engaged share: the index line stands for it, the other states are
# drawn beside it (two identical lines would hide one another).
# Notes hang from the top of the share axis (0-100 %), in a colour no state uses.
NOTE_Y, NOTE_COLOUR = 0.99, "#6b21a8"
KIND_COLOURS = {SessionKind.IN_PERSON: "#2457d6", SessionKind.ONLINE: "#9a6700"}


def colour(state: str) -> str:
    return STATE_COLOURS.get(state, OTHER_COLOUR)


def _states(rows: list[dict]) -> list[str]:
    seen = {state for row in rows for state in row["shares"]}
    return [s for s in STATES if s in seen or s in STATE_COLOURS] + sorted(seen - set(STATES))


def _session_label(row: dict) -> str:
    return f"{row['title']} ({timezone.localtime(row['started_at']):%d %b %Y})"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _figure(traces: list[dict], **layout) -> dict:
    return {"data": traces, "layout": LAYOUT | layout}


def _index_and_shares(x: list, points: list[dict], hover: str) -> list[dict]:
    """The engagement index (bold) and the share of each other state, on the same x."""
    traces = [
        {
            "type": "scatter", "x": x, "y": [p["engagement_index"] for p in points],
            "name": "Engagement index (Engaged share)", "mode": "lines+markers",
            "line": INDEX_LINE, "marker": {"size": 9},
            "hovertemplate": hover + "Engagement index %{y:.0%}<extra></extra>",
        }
    ]  # fmt: skip
    for state in _states(points):
        if state != ENGAGED:
            traces.append(
                {
                    "type": "scatter", "x": x, "y": [p["shares"].get(state) for p in points],
                    "name": f"{state} share", "mode": "lines+markers",
                    "line": {"color": colour(state), "dash": "dot", "width": 2},
                    "hovertemplate": hover + state + " %{y:.0%}<extra></extra>",
                }
            )  # fmt: skip
    return traces


def engagement_over_time(trends: list[dict], notes: list[dict] = ()) -> dict | None:
    """Engagement index and the other states' shares, one point per analysed session; the
    teacher's notes (numbered, as the page lists them) marked at their sessions."""
    rows = [row for row in trends if row["faces"]]
    if not rows:
        return None
    x = [_session_label(row) for row in rows]
    traces = _index_and_shares(x, rows, "%{x}<br>") + _corrected_engagement(rows)
    traces += _note_marks([note for note in notes if note["faces"]])
    return _figure(traces, xaxis=SESSION_AXIS, yaxis=SHARE_AXIS)


def _note_marks(notes: list[dict]) -> list[dict]:
    """A numbered pin at the top of each session that has a note; its text on hover."""
    if not notes:
        return []
    return [
        {
            "type": "scatter", "x": [_session_label(note) for note in notes],
            "y": [NOTE_Y] * len(notes), "name": "Your note (numbered below the chart)",
            "mode": "markers+text", "text": [f"✎{note['number']}" for note in notes],
            "textposition": "bottom center", "textfont": {"color": NOTE_COLOUR, "size": 13},
            "marker": {"symbol": "triangle-down", "size": 11, "color": NOTE_COLOUR},
            "customdata": [note["note"] for note in notes],
            "hovertemplate": "%{x}<br>Note: %{customdata}<extra></extra>",
        }
    ]  # fmt: skip


def _corrected_engagement(rows: list[dict]) -> list[dict]:
    """The corrected engagement index with its 90 % band, and a triangle on each session where
    it moved beyond doubt since the session before (services' `change`)."""
    rows = [row for row in rows if row["corrected_shares"]]
    if not rows:
        return []
    x = [_session_label(row) for row in rows]
    low = [row["intervals"][ENGAGED][0] for row in rows]
    high = [row["intervals"][ENGAGED][1] for row in rows]
    traces = [
        {
            "type": "scatter", "x": x + x[::-1], "y": high + low[::-1], "fill": "toself",
            "mode": "lines",  # Plotly's default adds markers to a short trace: stray dots
            "fillcolor": "rgba(21, 32, 67, 0.15)", "line": {"width": 0},
            "name": "Corrected engagement, 90 % range", "hoverinfo": "skip",
        },
        {
            "type": "scatter", "x": x, "y": [row["corrected_shares"][ENGAGED] for row in rows],
            "name": "Corrected engagement", "mode": "lines+markers",
            "line": {"color": "#152043", "width": 2, "dash": "dash"},
            "customdata": [[lo, hi] for lo, hi in zip(low, high, strict=True)],
            "text": [  # the conclusion meter's words, as the session table says them
                f" · not yet conclusive: about {row['faces_to_conclude']} more faces"
                if row.get("faces_to_conclude") else "" for row in rows
            ],
            "hovertemplate": "%{x}%{text}<br>Corrected %{y:.0%} (90 % range "
            "%{customdata[0]:.0%}–%{customdata[1]:.0%})<extra></extra>",
        },
    ]  # fmt: skip
    moved = [row for row in rows if row["change"]]
    if moved:
        traces.append(
            {
                "type": "scatter", "x": [_session_label(row) for row in moved],
                "y": [row["corrected_shares"][ENGAGED] for row in moved],
                "name": "Change beyond doubt", "mode": "markers",
                "marker": {
                    "symbol": [f"triangle-{row['change']}" for row in moved],
                    "size": 14, "color": "#152043",
                },
                "hovertemplate": "%{x}<br>Engagement %{y:.0%}: changed beyond doubt"
                "<extra></extra>",
            }
        )  # fmt: skip
    return traces


def state_distribution(trends: list[dict]) -> dict | None:
    """The share of faces in each state per session, stacked to 100 % (counts on hover)."""
    rows = [row for row in trends if row["faces"]]
    if not rows:
        return None
    labels = [_session_label(row) for row in rows]
    traces = [
        {
            "type": "bar", "x": labels, "y": [row["shares"].get(state) or 0 for row in rows],
            "customdata": [row["counts"].get(state, 0) for row in rows], "name": state,
            "marker": {"color": colour(state)},
            "hovertemplate": "%{x}<br>" + state + " %{y:.0%} (%{customdata} faces)<extra></extra>",
        }
        for state in _states(rows)
    ]  # fmt: skip
    legend = LAYOUT["legend"] | {"traceorder": "normal"}  # the states in their usual order
    return _figure(traces, barmode="stack", xaxis=SESSION_AXIS, yaxis=SHARE_AXIS, legend=legend)


# A photo's shares move by 1/faces when one face reads differently: from 10 faces up a step is
# at most 10 points, below that single faces make the photo-to-photo line swing by chance.
TIMELINE_MIN_FACES = 10


def timeline_photos(timeline: dict) -> list[dict]:
    """The photos of a session timeline with enough faces for their shares to mean something."""
    return [p for p in timeline["points"] if p["faces"] >= TIMELINE_MIN_FACES]


def session_timeline(timeline: dict) -> dict | None:
    """Within one session: the engagement index and the other states' shares photo by photo,
    over the photos with at least TIMELINE_MIN_FACES faces (at least two of them)."""
    points = timeline_photos(timeline)
    if len(points) < 2:
        return None
    by_time = timeline["order"] == "capture time"
    x = [p["time"].isoformat() if by_time else p["position"] for p in points]
    xaxis = GRID | {"title": {"text": "Capture time" if by_time else "Photo (upload order)"}}
    if not by_time:
        xaxis["dtick"] = 1
    return _figure(_index_and_shares(x, points, ""), xaxis=xaxis, yaxis=SHARE_AXIS)


def kind_comparison(kinds: dict[str, dict]) -> dict | None:
    """In-person vs online: state shares of all faces of each kind, side by side; one colour
    (and a hatch for online) per kind, so the legend's swatches tell the kinds apart."""
    present = [k for k in SessionKind.values if k in kinds and kinds[k]["faces"]]
    if len(present) < 2:
        return None
    traces = []
    for kind, pattern in zip(present, ("", "/"), strict=False):
        summary = kinds[kind]
        traces.append(
            {
                "type": "bar", "x": list(summary["shares"]), "y": list(summary["shares"].values()),
                "name": f"{summary['label']} ({_plural(summary['sessions'], 'session')}, "
                f"{_plural(summary['faces'], 'face')})",
                "marker": {"color": KIND_COLOURS[kind], "pattern": {"shape": pattern}},
                "hovertemplate": "%{x} %{y:.0%}<extra></extra>",
            }
        )  # fmt: skip
    return _figure(traces, barmode="group", xaxis=GRID, yaxis=SHARE_AXIS)


# An A4 page with 15 mm margins is 180 mm wide: 680 CSS px. The report's charts are drawn at that
# width so that the printed page shows them whole.
PRINT_WIDTH = 680
# A term of sessions slants their names under the axis, where the legend overprinted them: on
# paper the legend goes above the plot, in height the page has room for. Below 430 px a term's
# slanted names are clipped (tests/browser/test_phones_and_print.py), so a report with its
# tables fills three A4 pages rather than two.
PRINT_HEIGHT = 430
PRINT_LEGEND = {"y": 1.02, "yanchor": "bottom"}


def for_print(figure: dict | None) -> dict | None:
    """A figure at a fixed width and height that fits an A4 page, its labels clear of each
    other."""
    if figure is None:
        return None
    layout = figure["layout"]
    return {
        "data": figure["data"],
        "layout": layout
        | {
            "width": PRINT_WIDTH,
            "height": PRINT_HEIGHT,
            "legend": layout.get("legend", LAYOUT["legend"]) | PRINT_LEGEND,
        },
    }
