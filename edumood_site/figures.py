"""Plotly figures as the pages take them: plain JSON data, drawn by static/js/figures.js."""

import json


def plain(figure) -> dict:
    """A Plotly figure as plain JSON data ({"data", "layout"}) for `json_script`."""
    return json.loads(figure.to_json())


def plain_figures(figures: dict) -> dict[str, dict]:
    """Each figure of a page as plain JSON data; names without a figure (None) are left out."""
    return {name: plain(figure) for name, figure in figures.items() if figure is not None}
