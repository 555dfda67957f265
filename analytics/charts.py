"""Plotly figures of the classroom dashboard, built from the aggregates in services.

Each function returns a figure as plain JSON (for `json_script` and `Plotly.newPlot`) or None
when there is nothing to draw, so the page can say why instead of showing an empty frame.
"""

from datetime import timedelta

import plotly.graph_objects as go
from django.utils import timezone

from edumood_site.figures import plain
from ml.labels import ENGAGED, OTHER_COLOUR, STATE_COLOURS, STATES

from .choices import SessionKind

LAYOUT = {
    "margin": {"l": 50, "r": 20, "t": 40, "b": 50},
    "legend": {"orientation": "h", "y": -0.2},
    "template": "plotly_white",
    "height": 360,
}


def colour(state: str) -> str:
    return STATE_COLOURS.get(state, OTHER_COLOUR)


def _states(rows: list[dict]) -> list[str]:
    seen = {state for row in rows for state in row["counts"]}
    return [s for s in STATES if s in seen or s in STATE_COLOURS] + sorted(seen - set(STATES))


def _session_label(row: dict) -> str:
    return f"{row['title']} ({timezone.localtime(row['started_at']):%d %b})"


def engagement_over_time(trends: list[dict]) -> dict | None:
    """Engagement index (bold) and the share of each state, one point per session."""
    rows = [row for row in trends if row["faces"]]
    if not rows:
        return None
    x = [row["started_at"] for row in rows]
    text = [_session_label(row) for row in rows]
    fig = go.Figure()
    fig.add_scatter(
        x=x,
        y=[row["engagement_index"] for row in rows],
        name="Engagement index",
        mode="lines+markers",
        line={"color": "#152043", "width": 4},
        text=text,
        hovertemplate="%{text}<br>Engagement index %{y:.0%}<extra></extra>",
    )
    _corrected_engagement(fig, rows)
    for state in _states(rows):
        fig.add_scatter(
            x=x,
            y=[row["shares"].get(state) for row in rows],
            name=f"{state} share",
            mode="lines+markers",
            line={"color": colour(state), "dash": "dot"},
            text=text,
            hovertemplate="%{text}<br>" + state + " %{y:.0%}<extra></extra>",
        )
    fig.update_layout(
        title="Engagement index and state shares per session",
        yaxis={"tickformat": ".0%", "range": [-0.02, 1.02], "title": "Share of faces"},
        **LAYOUT,
    )
    if len(rows) == 1:  # one point: show the day around it, not milliseconds
        fig.update_xaxes(range=[x[0] - timedelta(days=1), x[0] + timedelta(days=1)])
    return plain(fig)


def _corrected_engagement(fig, rows: list[dict]) -> None:
    """The corrected engagement index with its 90 % band, and a triangle on each session where
    it moved beyond doubt since the session before (services' `change`)."""
    rows = [row for row in rows if row["corrected_shares"]]
    if not rows:
        return
    x = [row["started_at"] for row in rows]
    low = [row["intervals"][ENGAGED][0] for row in rows]
    high = [row["intervals"][ENGAGED][1] for row in rows]
    fig.add_scatter(
        x=x + x[::-1],
        y=high + low[::-1],
        fill="toself",
        fillcolor="rgba(21, 32, 67, 0.15)",
        line={"width": 0},
        name="Corrected engagement, 90 % range",
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=x,
        y=[row["corrected_shares"][ENGAGED] for row in rows],
        name="Corrected engagement",
        mode="lines+markers",
        line={"color": "#152043", "width": 2, "dash": "dash"},
        customdata=[[lo, hi] for lo, hi in zip(low, high, strict=True)],
        text=[
            _session_label(row) + ("" if row["enough_faces"] else " · too few faces to conclude")
            for row in rows
        ],
        hovertemplate="%{text}<br>Corrected %{y:.0%} (90 % range %{customdata[0]:.0%}–"
        "%{customdata[1]:.0%})<extra></extra>",
    )
    moved = [row for row in rows if row["change"]]
    if moved:
        fig.add_scatter(
            x=[row["started_at"] for row in moved],
            y=[row["corrected_shares"][ENGAGED] for row in moved],
            name="Change beyond doubt",
            mode="markers",
            marker={
                "symbol": [f"triangle-{row['change']}" for row in moved],
                "size": 14,
                "color": "#152043",
            },
            hovertemplate="Engagement %{y:.0%}: changed beyond doubt<extra></extra>",
        )


def state_distribution(trends: list[dict]) -> dict | None:
    """Faces per state in each session, stacked."""
    rows = [row for row in trends if row["faces"]]
    if not rows:
        return None
    labels = [_session_label(row) for row in rows]
    fig = go.Figure()
    for state in _states(rows):
        fig.add_bar(
            x=labels,
            y=[row["counts"].get(state, 0) for row in rows],
            name=state,
            marker_color=colour(state),
        )
    fig.update_layout(
        title="State distribution per session (faces)",
        barmode="stack",
        yaxis={"title": "Faces"},
        **LAYOUT,
    )
    return plain(fig)


def session_timeline(timeline: dict, title: str) -> dict | None:
    """Within one session: the engagement index and state shares photo by photo."""
    points = [p for p in timeline["points"] if p["faces"]]
    if len(points) < 2:
        return None
    by_time = timeline["order"] == "capture time"
    x = [p["time"] if by_time else p["position"] for p in points]
    fig = go.Figure()
    fig.add_scatter(
        x=x,
        y=[p["engagement_index"] for p in points],
        name="Engagement index",
        mode="lines+markers",
        line={"color": "#152043", "width": 4},
        customdata=[[p["faces"]] for p in points],
        hovertemplate="Engagement index %{y:.0%} (%{customdata[0]} faces)<extra></extra>",
    )
    for state in STATES:
        fig.add_scatter(
            x=x,
            y=[p["shares"].get(state) for p in points],
            name=f"{state} share",
            mode="lines",
            line={"color": colour(state), "dash": "dot"},
        )
    fig.update_layout(
        title=f"Within the session “{title}” (by {timeline['order']})",
        xaxis={"title": "Capture time" if by_time else "Photo (upload order)"}
        | ({} if by_time else {"dtick": 1}),
        yaxis={"tickformat": ".0%", "range": [-0.02, 1.02], "title": "Share of faces"},
        **LAYOUT,
    )
    return plain(fig)


def kind_comparison(kinds: dict[str, dict]) -> dict | None:
    """In-person vs online: state shares of all faces of each kind, side by side."""
    present = [k for k in SessionKind.values if k in kinds and kinds[k]["faces"]]
    if len(present) < 2:
        return None
    fig = go.Figure()
    for kind, pattern in zip(present, ("", "/"), strict=False):
        summary = kinds[kind]
        fig.add_bar(
            x=list(summary["shares"]),
            y=list(summary["shares"].values()),
            name=f"{summary['label']} ({summary['sessions']} sessions, {summary['faces']} faces)",
            marker={"color": [colour(s) for s in summary["shares"]], "pattern_shape": pattern},
            hovertemplate="%{x} %{y:.0%}<extra></extra>",
        )
    fig.update_layout(
        title="In person vs online: share of faces per state",
        barmode="group",
        yaxis={"tickformat": ".0%", "title": "Share of faces"},
        **LAYOUT,
    )
    return plain(fig)
