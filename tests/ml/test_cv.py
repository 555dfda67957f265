"""k-fold splits (stratified, disjoint, group-aware) and a tiny 2-fold training run."""

import numpy as np
import pytest

from ml.cv import fold_indices, kfold
from ml.data import ImageSet
from ml.errors import DataError
from ml.recipe import TrainConfig


def test_folds_are_stratified_disjoint_and_cover_everything():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    folds = fold_indices(labels, k=10, seed=0)
    assert len(folds) == 10
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(100))  # every sample tested exactly once
    for train, test in folds:
        assert not set(train) & set(test)
        assert len(train) + len(test) == 100
        assert np.bincount(labels[test]).tolist() == [5, 3, 2]
    again = fold_indices(labels, k=10, seed=0)
    other = fold_indices(labels, k=10, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def test_group_folds_keep_each_group_in_one_fold():
    labels = np.tile([0, 1], 60)
    groups = np.repeat([f"subject{i}" for i in range(20)], 6)
    folds = fold_indices(labels, k=4, seed=0, groups=groups)
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert set(labels[test]) == {0, 1}
    assert sorted(np.concatenate([t for _, t in folds])) == list(range(120))


def test_impossible_fold_counts_are_data_errors():
    with pytest.raises(DataError, match="at least 2 folds"):
        fold_indices(np.array([0, 1] * 10), k=1, seed=0)
    with pytest.raises(DataError, match="smallest has 3"):
        fold_indices(np.array([0] * 20 + [1] * 3), k=5, seed=0)
    with pytest.raises(DataError, match="distinct groups"):
        fold_indices(np.array([0, 1] * 10), k=5, seed=0, groups=np.array(["a", "b"] * 10))
    with pytest.raises(DataError, match="two classes"):
        fold_indices(np.zeros(10, dtype=int), k=2, seed=0)


def _tiny_set(n_per_class=24, size=16) -> ImageSet:
    """Two classes told apart by brightness alone: dark and bright noise."""
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 80, (n_per_class, size, size))
    bright = rng.integers(170, 256, (n_per_class, size, size))
    return ImageSet(
        images=np.concatenate([dark, bright]).astype(np.uint8),
        labels=np.repeat([0, 1], n_per_class).astype(np.int64),
        classes=["dark", "bright"],
        files=[f"{c}/{i}.png" for c in ("dark", "bright") for i in range(n_per_class)],
    )


def test_two_fold_run_reports_per_fold_metrics_and_progress():
    data = _tiny_set()
    config = TrainConfig(
        arch="seed-main", epochs=2, batch_size=16, lr=0.01, input_size=16, device="cpu",
        augment=False, precision="fp32", normalisation="scale",
    )  # fmt: skip
    seen = []
    result = kfold(data, config, k=2, seed=0, progress=lambda p: seen.append(p.fraction))
    assert result["k"] == 2 and len(result["folds"]) == 2 and not result["cancelled"]
    for fold in result["folds"]:
        assert fold["n_test"] == 24 and fold["n_train"] + fold["n_val"] == 24
        assert 0 <= fold["accuracy"] <= 1
    accuracies = [f["accuracy"] for f in result["folds"]]
    assert result["mean"]["accuracy"] == pytest.approx(np.mean(accuracies))
    assert result["std"]["accuracy"] == pytest.approx(np.std(accuracies, ddof=1))
    assert result["out_of_fold"]["n"] == 48
    assert result["mean"]["accuracy"] > 0.75  # brightness separates the classes; chance is 0.5
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert max(seen[: len(seen) // 2]) <= 0.5 + 1e-9  # the first fold fills the first half


def test_kfold_stops_when_asked():
    data = _tiny_set()
    config = TrainConfig(arch="seed-main", epochs=2, batch_size=16, input_size=16, device="cpu")
    result = kfold(data, config, k=2, should_stop=lambda: True)
    assert result["cancelled"] and result["folds"] == []
