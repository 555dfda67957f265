"""Plotly figures of the admin pages, built from stored JSON (metrics, histories, audits)."""

import plotly.graph_objects as go

from ml.options import REPORTED_METRICS

LAYOUT = {"margin": {"l": 50, "r": 20, "t": 50, "b": 50}, "height": 360}


def confusion_matrix(card, normalised: bool) -> go.Figure | None:
    """A scorecard's confusion matrix, in counts or normalised by true class."""
    matrix, classes = card.confusion, list(card.classes)
    if not matrix or not classes:
        return None
    if normalised:
        matrix = [[v / sum(row) if sum(row) else 0.0 for v in row] for row in matrix]
    text = [[f"{v:.2f}" if normalised else str(v) for v in row] for row in matrix]
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=classes,
            y=classes,
            colorscale="Blues",
            text=text,
            texttemplate="%{text}",
            hovertemplate="true %{y}<br>predicted %{x}: %{text}<extra></extra>",
        )  # fmt: skip
    )
    figure.update_layout(
        title="Confusion matrix" + (" (normalised by true class)" if normalised else " (counts)"),
        xaxis_title="predicted",
        yaxis={"title": "true", "autorange": "reversed"},
        **{**LAYOUT, "height": 420},
    )
    return figure


def epoch_axis(epochs: int, title: str = "epoch") -> dict:
    """Whole-number ticks (no "epoch 1.5"), at most about a dozen of them."""
    return {"title": title, "tickmode": "linear", "tick0": 1, "dtick": max(1, -(-epochs // 12))}


# Loss (unbounded) on the left axis, accuracies (0-100 %) on the right: on one axis a loss of 2
# flattens every accuracy line. static/js/classifier.js draws the live chart the same way.
ACCURACY_AXIS = {
    "title": "accuracy", "overlaying": "y", "side": "right", "range": [0, 1.02],
    "tickmode": "linear", "dtick": 0.25, "tickformat": ".0%", "showgrid": False,
}  # fmt: skip


CURVES_MARGIN = {"l": 55, "r": 65, "t": 50, "b": 50}  # room for the accuracy axis


def training_curves(history: list[dict]) -> go.Figure | None:
    if not history:
        return None
    epochs = [h["epoch"] for h in history]
    figure = go.Figure()
    figure.add_scatter(x=epochs, y=[h.get("loss") for h in history], name="train loss")
    figure.add_scatter(
        x=epochs, y=[h.get("accuracy") for h in history], name="train accuracy", yaxis="y2"
    )
    if any(h.get("val_accuracy") is not None for h in history):
        figure.add_scatter(
            x=epochs, y=[h.get("val_accuracy") for h in history], name="validation accuracy",
            yaxis="y2",
        )  # fmt: skip
    figure.update_layout(
        title="Training curves", xaxis=epoch_axis(len(epochs)),
        yaxis={"title": "loss", "rangemode": "tozero"}, yaxis2=ACCURACY_AXIS,
        legend={"orientation": "h", "y": -0.25}, **(LAYOUT | {"margin": CURVES_MARGIN}),
    )  # fmt: skip
    return figure


def kfold_chart(result: dict) -> go.Figure | None:
    """Each metric per fold as markers: folds are separate runs, so no line joins them."""
    folds = result.get("folds") or []
    if not folds:
        return None
    figure = go.Figure()
    x = list(range(1, len(folds) + 1))
    for metric in REPORTED_METRICS:
        figure.add_scatter(
            x=x, y=[fold.get(metric) for fold in folds], mode="markers", name=metric,
            marker={"size": 10},
        )  # fmt: skip
    figure.update_layout(
        title="Metrics per fold", xaxis=epoch_axis(len(folds), "fold"),
        yaxis={"range": [0, 1], "tickformat": ".0%"}, **LAYOUT,
    )  # fmt: skip
    return figure


def recall_chart(versions) -> go.Figure | None:
    """Per-class recall of model versions side by side (their scorecards), one bar group per
    class; a class a version was not measured on has no bar."""
    classes = list(dict.fromkeys(c for v in versions for c in v.card.recall))
    if not classes:
        return None
    figure = go.Figure()
    for version in versions:
        figure.add_bar(
            x=classes, y=[version.card.recall.get(c) for c in classes],
            name=f"#{version.pk} {version.name}"[:40],
            text=[f"n={version.card.support[c]}" if c in version.card.support else ""
                  for c in classes],
        )  # fmt: skip
    figure.update_layout(
        title="Recall per class", barmode="group",
        yaxis={"title": "recall", "range": [0, 1], "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.2}, **LAYOUT,
    )  # fmt: skip
    return figure


def fairness_chart(column: str, table: dict, title_suffix: str = "") -> go.Figure:
    """Accuracy per group with its bootstrap interval, and the overall accuracy as a line; a
    group without samples has no bar, and says so, instead of a bar at zero."""
    groups = list(table["groups"])
    entries = [table["groups"][g] for g in groups]
    values = [e["accuracy"] if e["n"] else None for e in entries]
    figure = go.Figure(
        go.Bar(
            x=groups,
            y=values,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [
                    e["ci_high"] - v if v is not None else None
                    for e, v in zip(entries, values, strict=True)
                ],
                "arrayminus": [
                    v - e["ci_low"] if v is not None else None
                    for e, v in zip(entries, values, strict=True)
                ],
            },
            text=[f"n={e['n']}" if e["n"] else "no data" for e in entries],
            marker_color=["#c0392b" if e.get("flagged") else "#2e86c1" for e in entries],
        )  # fmt: skip
    )
    for group, entry in zip(groups, entries, strict=True):
        if not entry["n"]:
            figure.add_annotation(x=group, y=0.05, text="no data", showarrow=False)
    figure.add_hline(y=table["overall"]["accuracy"], line_dash="dash", annotation_text="overall")
    figure.update_layout(
        title=f"Accuracy by {column}{title_suffix} (95% interval)",
        yaxis={"title": "accuracy", "range": [0, 1]},
        **LAYOUT,
    )
    return figure
