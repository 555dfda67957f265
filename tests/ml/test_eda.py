"""EDA summary values on a hand-built ImageSet, and the files write_eda produces."""

import json

import numpy as np
import pytest
from PIL import Image

from ml.data import ImageSet
from ml.eda import figures, summarize, write_eda


def _constant_images(values) -> np.ndarray:
    return np.stack([np.full((8, 8), v, dtype=np.uint8) for v in values])


@pytest.fixture
def image_set() -> ImageSet:
    """a: 40 images of grey levels 0..39; b: levels 100..108 plus one 0 (a copy of a's first
    image, a label conflict); c: 250, 251, 252, 250, 250 (three identical images)."""
    a, b, c = list(range(40)), [*range(100, 109), 0], [250, 251, 252, 250, 250]
    labels = np.array([0] * 40 + [1] * 10 + [2] * 5, dtype=np.int64)
    files = [f"{name}/{i}.png" for name, n in (("a", 40), ("b", 10), ("c", 5)) for i in range(n)]
    gender = np.array(["m"] * 30 + ["f"] * 19 + [""] + ["x"] * 5, dtype=object)
    return ImageSet(
        images=_constant_images(a + b + c),
        labels=labels,
        classes=["a", "b", "c"],
        files=files,
        attributes={"gender": gender},
        errors=[("a/broken.png", "cannot identify image file")],
    )


def test_summary_values(image_set):
    summary = summarize(image_set)
    json.dumps(summary, allow_nan=False)
    assert summary["n"] == 55 and summary["image_size"] == [8, 8]
    assert summary["class_counts"] == {"a": 40, "b": 10, "c": 5}
    assert summary["imbalance_ratio"] == 8.0

    hist = summary["intensity"]["per_class"]
    assert len(summary["intensity"]["bin_edges"]) == 33
    assert hist["a"][:5] == [0.2] * 5 and sum(hist["a"][5:]) == 0
    assert (hist["b"][0], hist["b"][12], hist["b"][13]) == pytest.approx((0.1, 0.4, 0.5))
    assert hist["c"][31] == 1.0

    brightness = summary["brightness"]["per_class"]
    assert brightness["a"]["mean"] == pytest.approx(19.5)
    assert brightness["a"]["std"] == pytest.approx(np.std(np.arange(40)))
    assert brightness["c"]["mean"] == pytest.approx(250.6)

    duplicates = summary["duplicates"]
    assert (duplicates["groups"], duplicates["files"]) == (2, 5)
    assert duplicates["conflicting_label_groups"] == 1
    assert sorted(map(sorted, duplicates["examples"])) == [
        ["a/0.png", "b/9.png"],
        ["c/0.png", "c/3.png", "c/4.png"],
    ]

    assert summary["attributes"]["gender"] == {"": 1, "f": 19, "m": 30, "x": 5}
    assert summary["errors"]["count"] == 1
    warnings = "\n".join(summary["warnings"])
    assert "class imbalance: a has 8.0x the images of c" in warnings
    assert "f (19), x (5)" in warnings and "m (30)" not in warnings
    assert "5 files in 2 groups of identical images, 1 groups with conflicting labels" in warnings
    assert "1 unreadable files" in warnings


def test_balanced_clean_set_has_no_warnings(image_set):
    clean = image_set.subset(np.arange(1, 41))  # a1..a39 and b0: distinct, no attribute gaps
    clean.attributes = {}
    clean.errors = []
    clean.labels = np.array([0] * 20 + [1] * 20, dtype=np.int64)
    clean.classes = ["a", "b"]
    assert summarize(clean)["warnings"] == []


def test_figures(image_set):
    figs = figures(image_set, per_class=4)
    assert set(figs) == {"class_distribution", "intensity_histograms", "sample_grid"}
    assert list(figs["class_distribution"].data[0].y) == [40, 10, 5]
    assert [t.name for t in figs["intensity_histograms"].data] == ["a", "b", "c"]
    grid = np.asarray(figs["sample_grid"].data[0].z)
    assert grid.shape == (3 * 8, 4 * 8, 3)
    assert set(np.unique(grid[16:, :, 0])) <= {250, 251, 252}  # row c holds only c's images


def test_write_eda_files(image_set, tmp_path):
    result = write_eda(image_set, tmp_path / "eda", per_class=4)
    files = result["files"]
    saved = json.loads((tmp_path / "eda" / "summary.json").read_text())
    assert saved == summarize(image_set) == result["summary"]
    for name in ("class_distribution", "intensity_histograms", "sample_grid"):
        html = (tmp_path / "eda" / f"{name}.html").read_text()
        assert 'src="plotly.min.js"' in html and "cdn.plot.ly" not in html
    assert (tmp_path / "eda" / "plotly.min.js").stat().st_size > 1_000_000
    with Image.open(files["samples_c"]) as png:
        assert png.size == (4 * 8 * 2, 8 * 2)
    with Image.open(files["sample_grid_png"]) as png:
        assert png.size == (4 * 8 * 2, 3 * 8 * 2)
