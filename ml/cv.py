"""Stratified (optionally group-aware) k-fold cross-validation: per-fold metrics, mean ± std."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ml.data import ImageSet, stratified_split
from ml.errors import DataError
from ml.evaluate import classification_metrics, predict_labels
from ml.options import REPORTED_METRICS, KFoldOptions, SplitOptions
from ml.predict import Classifier
from ml.recipe import TrainConfig
from ml.train import Progress, train


def fold_indices(labels, k: int, seed: int, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, test) index pairs; each sample is tested exactly once.

    Class proportions are kept in every fold (StratifiedKFold). With ``groups`` (e.g. subject
    ids) all samples of a group land in the same fold (StratifiedGroupKFold), so a model is
    never tested on a person it trained on; stratification is then best effort.
    """
    labels = np.asarray(labels)
    if k < 2:
        raise DataError(f"k-fold needs at least 2 folds, got {k}")
    counts = np.unique(labels, return_counts=True)[1]
    if len(counts) < 2:
        raise DataError("k-fold needs at least two classes with images")
    smallest = int(counts.min())
    if groups is None:
        if smallest < k:
            raise DataError(
                f"{k} folds need at least {k} images in every class; the smallest has {smallest}"
            )
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels)
    else:
        groups = np.asarray(groups, dtype=object).astype(str)
        if len(np.unique(groups)) < k:
            raise DataError(f"{k} folds need at least {k} distinct groups")
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels, groups)
    return [(train_idx, test_idx) for train_idx, test_idx in splits]


def scaled_progress(progress: Callable[[Progress], None] | None, start: float, share: float):
    """A train() progress callback reporting its fraction mapped into [start, start + share]
    of a larger job (one of several folds or runs); None when there is no callback."""
    if progress is None:
        return None
    return lambda p: progress(dataclasses.replace(p, fraction=start + share * p.fraction))


def _summary(folds: list[dict]) -> tuple[dict, dict]:
    """Mean and sample standard deviation (ddof=1) of each fold metric."""
    mean, std = {}, {}
    for metric in REPORTED_METRICS:
        values = np.array([fold[metric] for fold in folds], dtype=np.float64)
        mean[metric] = float(values.mean()) if len(values) else None
        std[metric] = float(values.std(ddof=1)) if len(values) > 1 else None
    return mean, std


def kfold(
    data: ImageSet,
    config: TrainConfig,
    k: int = KFoldOptions.k,
    seed: int = 0,
    group_column: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    val_fraction: float = SplitOptions.val_fraction,
) -> dict:
    """Train and test one model per fold; per-fold metrics, their mean ± std, out-of-fold metrics.

    Folds come from ``fold_indices`` (grouped by ``data.attributes[group_column]`` when given).
    Each fold's model trains on the other folds, minus a stratified ``val_fraction`` that
    ml.train uses to pick the best epoch; the held-out fold is used only for testing, because
    choosing the epoch on it would inflate the very score being reported. ``val_fraction=0``
    trains without validation (the epoch with the lowest training loss is kept).
    ``progress`` receives train()'s Progress with ``fraction`` rescaled to the whole run.
    A stop request ends the run after the current fold's training stops; only completed
    folds are reported and ``cancelled`` is set.
    """
    groups = None
    if group_column is not None:
        if group_column not in data.attributes:
            raise DataError(f"group column {group_column!r} is not an attribute of the data")
        groups = data.attributes[group_column]
        if (np.asarray(groups) == "").any():
            raise DataError(f"group column {group_column!r} is empty for some images")
    splits = fold_indices(data.labels, k, seed, groups)
    config.validate()

    folds, cancelled = [], False
    oof_true, oof_pred = [], []
    for fold, (train_idx, test_idx) in enumerate(splits):
        train_part, test_set = data.subset(train_idx), data.subset(test_idx)
        if val_fraction > 0:
            train_set, val_set = stratified_split(train_part, val_fraction, seed)
        else:
            train_set, val_set = train_part, None
        checkpoint = train(
            train_set, val_set, config,
            progress=scaled_progress(progress, fold / k, 1 / k), should_stop=should_stop,
        )  # fmt: skip
        if checkpoint["cancelled"]:
            cancelled = True
            break
        predictions = predict_labels(Classifier(checkpoint, device=config.device), test_set)
        metrics = classification_metrics(test_set.labels, predictions, data.classes)
        folds.append(
            {
                "fold": fold,
                "n_train": len(train_set),
                "n_val": len(val_set) if val_set is not None else 0,
                "n_test": len(test_set),
                "best_epoch": checkpoint["metrics"].get("best_epoch"),
                **{metric: metrics[metric] for metric in REPORTED_METRICS},
            }
        )
        oof_true.append(test_set.labels)
        oof_pred.append(predictions)

    mean, std = _summary(folds)
    out_of_fold = (
        classification_metrics(np.concatenate(oof_true), np.concatenate(oof_pred), data.classes)
        if folds
        else None
    )
    return {
        "k": k,
        "seed": seed,
        "group_column": group_column,
        "val_fraction": val_fraction,
        "n": len(data),
        "classes": list(data.classes),
        "config": dataclasses.asdict(config),
        "folds": folds,
        "mean": mean,
        "std": std,
        "out_of_fold": out_of_fold,
        "cancelled": cancelled,
    }
