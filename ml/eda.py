"""Exploratory data analysis of an ImageSet: class balance, intensities, duplicates, samples.

``summarize`` returns plain JSON; ``figures`` builds Plotly figures; ``write_eda`` writes both
(HTML that works offline with one shared plotly.min.js, plus PNG sample grids drawn with Pillow
so no browser-based image exporter is needed).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from ml.data import ImageSet
from ml.fairness import categorical_columns, group_sizes
from ml.options import AuditOptions

BINS = 32
# Above this largest/smallest class ratio a plain cross-entropy model mostly ignores the
# smallest class (FER2013's disgust vs happy is about 16).
IMBALANCE_WARNING = 3.0
SAMPLES_PER_CLASS = 8
_CHUNK = 2048  # images per bincount, bounding the int64 copy numpy makes to ~40 MB


def _histogram(images: np.ndarray) -> np.ndarray:
    """Pixel counts in 32 equal bins over 0-255 (8 grey levels per bin)."""
    counts = np.zeros(BINS, dtype=np.int64)
    for start in range(0, len(images), _CHUNK):
        counts += np.bincount((images[start : start + _CHUNK] >> 3).ravel(), minlength=BINS)
    return counts


def _duplicates(data: ImageSet) -> list[list[int]]:
    """Groups (indices) of byte-identical images, as decoded and resized."""
    by_hash = defaultdict(list)
    for i, image in enumerate(data.images):
        by_hash[hashlib.blake2b(image.tobytes(), digest_size=16).digest()].append(i)
    return [group for group in by_hash.values() if len(group) > 1]


def summarize(data: ImageSet, min_group_size: int = AuditOptions.min_group_size) -> dict:
    """Class counts, intensity histograms, brightness, duplicates, attribute groups, warnings.

    Brightness is the mean pixel value of an image; per class we report the mean and standard
    deviation of that over the class's images. Histograms are fractions of the class's pixels
    per bin. Duplicates are byte-identical images after decoding; a group spanning more than
    one class is a label conflict.
    """
    counts = np.bincount(data.labels, minlength=len(data.classes))
    brightness = data.images.mean(axis=(1, 2)) if len(data) else np.zeros(0)
    histograms, per_class_brightness = {}, {}
    for index, name in enumerate(data.classes):
        members = data.labels == index
        hist = _histogram(data.images[members])
        histograms[name] = (hist / max(hist.sum(), 1)).tolist()
        values = brightness[members]
        per_class_brightness[name] = {
            "mean": float(values.mean()) if len(values) else None,
            "std": float(values.std()) if len(values) else None,
        }

    groups = _duplicates(data)
    conflicting = [g for g in groups if len(set(data.labels[g].tolist())) > 1]
    nonzero = counts[counts > 0]
    imbalance = float(nonzero.max() / nonzero.min()) if len(nonzero) else None

    attributes = {}
    for column, values in data.attributes.items():
        attributes[column] = group_sizes(values)

    warnings = []
    empty = [name for name, count in zip(data.classes, counts, strict=True) if count == 0]
    if empty:
        warnings.append(f"classes with no images: {', '.join(empty)}")
    if imbalance is not None and imbalance > IMBALANCE_WARNING:
        smallest = data.classes[int(np.argmin(np.where(counts > 0, counts, counts.max() + 1)))]
        largest = data.classes[int(np.argmax(counts))]
        warnings.append(
            f"class imbalance: {largest} has {imbalance:.1f}x the images of {smallest}; "
            "consider class weighting"
        )
    # A numeric column (a raw age) is binned before any audit, so its raw values are no groups.
    for column in categorical_columns(data.attributes):
        sizes = attributes[column]
        tiny = [f"{g} ({n})" for g, n in sizes.items() if g and n < min_group_size]
        if tiny:
            warnings.append(
                f"attribute {column}: groups under {min_group_size} images, too small to audit "
                f"reliably: {', '.join(tiny)}"
            )
    if groups:
        warnings.append(
            f"{sum(len(g) for g in groups)} files in {len(groups)} groups of identical images"
            + (f", {len(conflicting)} groups with conflicting labels" if conflicting else "")
        )
    if data.errors:
        warnings.append(f"{len(data.errors)} unreadable files were skipped")

    return {
        "n": len(data),
        "classes": list(data.classes),
        "image_size": list(data.images.shape[1:]),
        "class_counts": {n: int(c) for n, c in zip(data.classes, counts, strict=True)},
        "imbalance_ratio": imbalance,
        "intensity": {"bin_edges": np.linspace(0, 256, BINS + 1).tolist(), "per_class": histograms},
        "brightness": {
            "overall": {
                "mean": float(brightness.mean()) if len(data) else None,
                "std": float(brightness.std()) if len(data) else None,
            },
            "per_class": per_class_brightness,
        },
        "duplicates": {
            "groups": len(groups),
            "files": sum(len(g) for g in groups),
            "conflicting_label_groups": len(conflicting),
            "examples": [[data.files[i] for i in g] for g in groups[:20]],
        },
        "attributes": attributes,
        "errors": {"count": len(data.errors), "examples": [list(e) for e in data.errors[:20]]},
        "warnings": warnings,
    }


def _sample_rows(data: ImageSet, per_class: int, seed: int) -> dict[str, np.ndarray]:
    """Per class, a (S, per_class * S) strip of randomly chosen images, black where too few."""
    rng = np.random.default_rng(seed)
    size = data.images.shape[1]
    rows = {}
    for index, name in enumerate(data.classes):
        members = np.flatnonzero(data.labels == index)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        strip = np.zeros((size, per_class * size), dtype=np.uint8)
        for slot, i in enumerate(chosen):
            strip[:, slot * size : (slot + 1) * size] = data.images[i]
        rows[name] = strip
    return rows


def figures(
    data: ImageSet, per_class: int = SAMPLES_PER_CLASS, seed: int = 0
) -> dict[str, go.Figure]:
    """Plotly figures: class distribution, intensity histogram per class, sample grid."""
    summary_counts = np.bincount(data.labels, minlength=len(data.classes))
    distribution = go.Figure(go.Bar(x=list(data.classes), y=summary_counts.tolist()))
    distribution.update_layout(title="Images per class", xaxis_title="class", yaxis_title="images")

    edges = np.linspace(0, 256, BINS + 1)
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    intensity = go.Figure()
    for index, name in enumerate(data.classes):
        hist = _histogram(data.images[data.labels == index])
        intensity.add_trace(
            go.Scatter(x=centres, y=(hist / max(hist.sum(), 1)).tolist(), mode="lines", name=name)
        )
    intensity.update_layout(
        title="Pixel intensity per class",
        xaxis_title="pixel value",
        yaxis_title="fraction of pixels",
    )

    rows = _sample_rows(data, per_class, seed)
    grid = np.concatenate(list(rows.values())) if rows else np.zeros((1, 1), np.uint8)
    size = data.images.shape[1]
    samples = go.Figure(go.Image(z=np.repeat(grid[:, :, None], 3, axis=2)))
    samples.update_layout(
        title=f"{per_class} random images per class",
        xaxis={"visible": False},
        yaxis={
            "tickvals": [(i + 0.5) * size for i in range(len(rows))],
            "ticktext": list(rows),
        },
    )
    return {
        "class_distribution": distribution,
        "intensity_histograms": intensity,
        "sample_grid": samples,
    }


def _safe_name(name: str) -> str:
    """A class name usable in a file name (class names come from user-supplied folders)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name) or "_"


def _save_png(pixels: np.ndarray, path: Path) -> Path:
    # Nearest-neighbour x2 keeps the 48-pixel faces legible without inventing detail.
    height, width = pixels.shape
    Image.fromarray(pixels).resize((width * 2, height * 2), Image.Resampling.NEAREST).save(path)
    return path


def write_eda(data: ImageSet, out_dir, per_class: int = SAMPLES_PER_CLASS, seed: int = 0) -> dict:
    """Write summary.json, one HTML per figure (sharing a local plotly.min.js, so they open
    offline) and PNG sample grids (one for all classes, one per class) into ``out_dir``.

    Returns ``{"out_dir", "files": {name: path}, "summary"}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(data)
    files = {"summary": out / "summary.json"}
    files["summary"].write_text(json.dumps(summary, indent=2), encoding="utf-8")
    for name, figure in figures(data, per_class, seed).items():
        files[name] = out / f"{name}.html"
        # "directory" writes plotly.min.js beside the first HTML and references it, so the
        # pages need no network and the 4 MB bundle is stored once.
        figure.write_html(files[name], include_plotlyjs="directory")
    files["plotly_js"] = out / "plotly.min.js"

    rows = _sample_rows(data, per_class, seed)
    for name, strip in rows.items():
        key = f"samples_{_safe_name(name)}"
        files[key] = _save_png(strip, out / f"{key}.png")
    if rows:
        files["sample_grid_png"] = _save_png(
            np.concatenate(list(rows.values())), out / "sample_grid.png"
        )
    return {"out_dir": str(out), "files": {k: str(v) for k, v in files.items()}, "summary": summary}
