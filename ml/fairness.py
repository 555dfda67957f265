"""Bias audit per subgroup (fairlearn MetricFrame) and mitigation by rebalancing or reweighting.

An audit answers: for each attribute column (gender, age group, ...), how does the model's
accuracy, macro precision / recall / F1 differ between groups, how sure are we (bootstrap 95%
interval), and which groups fall clearly below the overall accuracy. The attribute labels'
provenance travels in the report (``source``) because on FER2013 they are themselves
model-inferred (DeepFace), not ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from ml.checkpoint import load_checkpoint
from ml.cv import scaled_progress
from ml.data import ImageSet
from ml.errors import DataError
from ml.evaluate import predict_labels, true_labels_for
from ml.options import REPORTED_METRICS, STRATEGIES, AuditOptions
from ml.predict import Classifier
from ml.recipe import TrainConfig
from ml.train import Progress, train

CONFIDENCE = 0.95
# Resamples of each group's accuracy interval: a bound then moves by 0.003 between seeds for a
# group of 300 (standard deviation; 0.008 for 60, 0.001 for 2,300).
BOOTSTRAP_RESAMPLES = 1000

# Macro scores average over the classes present in a group (sklearn's default label set), so a
# group lacking a class is not penalised with a zero for it.
_METRIC_FNS = {
    "accuracy": accuracy_score,
    "macro_precision": partial(precision_score, average="macro", zero_division=0),
    "macro_recall": partial(recall_score, average="macro", zero_division=0),
    "macro_f1": partial(f1_score, average="macro", zero_division=0),
}


def _ratio(a: float, b: float) -> float | None:
    """a / b, or None when b is 0 (undefined; JSON has no NaN)."""
    if b == 0:
        return 1.0 if a == 0 else None
    return a / b


def _bootstrap_ci(correct: int, n: int, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of an accuracy of ``correct`` / ``n``.

    Resampling n predictions with replacement and counting the correct ones is exactly a
    Binomial(n, correct / n) draw, so this is the nonparametric bootstrap in O(n_boot) instead
    of O(n_boot * n) memory and time.
    """
    rng = np.random.default_rng(seed)
    accuracies = rng.binomial(n, correct / n, size=n_boot) / n
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(accuracies, [tail, 100 - tail])
    return float(low), float(high)


def _scores(row) -> dict[str, float]:
    return {name: float(row[name]) for name in REPORTED_METRICS}


def _audit_attribute(y_true, y_pred, values, *, min_group_size, n_boot, seed) -> dict:
    present = values != ""
    yt, yp, groups = y_true[present], y_pred[present], values[present]
    frame = MetricFrame(
        metrics=_METRIC_FNS, y_true=yt, y_pred=yp, sensitive_features=groups.astype(str)
    )
    overall = _scores(frame.overall)
    n_total = int(present.sum())
    correct = yt == yp
    overall["n"] = n_total
    overall["ci_low"], overall["ci_high"] = _bootstrap_ci(int(correct.sum()), n_total, n_boot, seed)

    table = {}
    for name, row in frame.by_group.iterrows():
        in_group = groups == name
        n = int(in_group.sum())
        entry = _scores(row)
        entry["n"] = n
        entry["small"] = n < min_group_size
        entry["ci_low"], entry["ci_high"] = _bootstrap_ci(
            int(correct[in_group].sum()), n, n_boot, seed
        )
        table[str(name)] = entry

    # A 3-image group at 100% would otherwise become "best" and make every gap noise.
    eligible = [g for g, e in table.items() if not e["small"]] or list(table)
    best = max(eligible, key=lambda g: (table[g]["accuracy"], table[g]["n"]))
    for entry in table.values():
        for metric in REPORTED_METRICS:
            entry[f"{metric}_difference_to_best"] = entry[metric] - table[best][metric]
            entry[f"{metric}_ratio_to_best"] = _ratio(entry[metric], table[best][metric])
            entry[f"{metric}_difference_to_overall"] = entry[metric] - overall[metric]
            entry[f"{metric}_ratio_to_overall"] = _ratio(entry[metric], overall[metric])

    # fairlearn's between-groups aggregates, over the groups large enough to compare.
    disparity = {}
    for metric in REPORTED_METRICS:
        scores = [table[g][metric] for g in eligible]
        disparity[f"{metric}_difference"] = max(scores) - min(scores)
        disparity[f"{metric}_ratio"] = _ratio(min(scores), max(scores))
    return {
        "overall": overall,
        "groups": table,
        "best_group": best,
        "disparity": disparity,
        "missing": int((~present).sum()),
    }


def audit(
    y_true,
    y_pred,
    attributes: dict[str, np.ndarray],
    classes,
    *,
    source: str,
    min_group_size: int = AuditOptions.min_group_size,
    threshold: float = AuditOptions.threshold,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Per-subgroup metrics and disparities for each attribute column, as a JSON-ready dict.

    ``y_true`` / ``y_pred`` are class indices into ``classes``; ``attributes`` maps a column
    name to a string array aligned with them ("" = missing; such rows are left out of that
    column's table and counted in ``missing``). For each column: ``overall`` and per-group
    accuracy, macro precision / recall / F1, size ``n``, bootstrap 95% interval of accuracy
    (``ci_low`` / ``ci_high``), difference and ratio of every metric to the best group and to
    overall, and ``small`` for groups under ``min_group_size``. The best group is the most
    accurate group that is not small.

    A finding is raised for a group that is not small whose accuracy is more than
    ``threshold`` below the column's overall accuracy and whose interval's upper bound is
    below overall too, i.e. the gap is both material and unlikely to be resampling noise.
    ``source`` says where the attribute labels came from and is copied into the report.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise DataError(
            f"y_true and y_pred must be 1-D and aligned, got {y_true.shape} and {y_pred.shape}"
        )
    if len(y_true) == 0:
        raise DataError("nothing to audit: no samples")
    columns = {}
    findings = []
    for column, values in attributes.items():
        values = np.asarray(values, dtype=object)
        if values.shape != y_true.shape:
            raise DataError(
                f"attribute {column!r} has {len(values)} values for {len(y_true)} samples"
            )
        if not (values != "").any():
            raise DataError(f"attribute {column!r} has no values for these samples")
        result = _audit_attribute(
            y_true, y_pred, values, min_group_size=min_group_size, n_boot=n_boot, seed=seed
        )
        columns[str(column)] = result
        overall = result["overall"]["accuracy"]
        for group, entry in result["groups"].items():
            gap = entry["accuracy"] - overall
            if not entry["small"] and gap < -threshold and entry["ci_high"] < overall:
                findings.append(
                    {
                        "attribute": str(column),
                        "group": group,
                        "n": entry["n"],
                        "accuracy": entry["accuracy"],
                        "overall_accuracy": overall,
                        "difference": gap,
                        "ci_low": entry["ci_low"],
                        "ci_high": entry["ci_high"],
                    }
                )
    correct = int((y_true == y_pred).sum())
    return {
        "source": source,
        "n": len(y_true),
        "classes": [str(c) for c in classes],
        "accuracy": correct / len(y_true),
        "metrics": list(REPORTED_METRICS),
        "min_group_size": min_group_size,
        "threshold": threshold,
        "confidence": CONFIDENCE,
        "n_boot": n_boot,
        "seed": seed,
        "attributes": columns,
        "findings": findings,
    }


def mitigation_weights(values, strategy: str) -> np.ndarray:
    """Per-sample weights that neutralise group imbalance in ``values`` ("" is a group too).

    ``"rebalance"``: sampling probabilities (sum 1) under which every group is drawn equally
    often, for a ``WeightedRandomSampler`` with replacement: small groups are oversampled, as
    the seed did. ``"reweight"``: loss weights inverse to group frequency, normalised to mean 1
    so the loss scale (and thus the learning rate) stays comparable to unweighted training.
    """
    if strategy not in STRATEGIES:
        raise DataError(f"unknown mitigation strategy {strategy!r}; choose one of {STRATEGIES}")
    values = np.asarray(values, dtype=object)
    if len(values) == 0:
        raise DataError("no samples to weight")
    _, inverse, counts = np.unique(values.astype(str), return_inverse=True, return_counts=True)
    per_sample = 1.0 / counts[inverse]
    if strategy == "rebalance":
        return per_sample / per_sample.sum()
    return per_sample / per_sample.mean()


def group_sizes(values) -> dict[str, int]:
    """Number of samples per distinct value ("" = missing counts as a value)."""
    names, sizes = np.unique(np.asarray(values, dtype=object).astype(str), return_counts=True)
    return {str(n): int(k) for n, k in zip(names, sizes, strict=True)}


def categorical_columns(attributes: dict[str, np.ndarray]) -> list[str]:
    """Attribute columns to audit by default: those whose values are not all numbers.

    A raw numeric column such as ``age_estimate`` would make every distinct age a group; bin it
    first (``age_groups`` / ``--age-bins``).
    """
    return [
        name
        for name, values in attributes.items()
        if not all(_is_number(v) for v in values if v != "")
    ]


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def audit_classifier(classifier, data: ImageSet, columns=None, *, source: str, **options) -> dict:
    """Predict ``data`` with a Classifier and audit it on ``columns`` (default: the categorical
    attribute columns). ``options`` go to ``audit``."""
    columns = list(columns) if columns is not None else categorical_columns(data.attributes)
    missing = [c for c in columns if c not in data.attributes]
    if missing:
        raise DataError(f"attribute column(s) {', '.join(missing)} not found in the attributes")
    if not columns:
        raise DataError("no categorical attribute columns to audit")
    y_true = true_labels_for(data, classifier.classes)
    y_pred = predict_labels(classifier, data)
    attributes = {c: data.attributes[c] for c in columns}
    return audit(y_true, y_pred, attributes, classifier.classes, source=source, **options)


def mitigate(
    train_set: ImageSet,
    val_set: ImageSet | None,
    eval_set: ImageSet,
    attribute: str,
    strategy: str,
    config: TrainConfig,
    *,
    baseline_checkpoint: dict | str | Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    source: str = "unspecified",
    audit_columns=None,
) -> dict:
    """Retrain with ``train_set`` balanced by ``attribute`` and audit before and after.

    ``strategy`` is "rebalance" (oversample small groups through the epoch sampler, as the
    seed did) or "reweight" (scale each sample's loss). The baseline is trained with the same
    config unless ``baseline_checkpoint`` (a checkpoint dict or path) is given. Both models
    are audited on ``eval_set`` (which must not overlap ``train_set``) over ``audit_columns``
    (default: ``attribute`` plus the other categorical columns, to show side effects).

    Returns ``{"attribute", "strategy", "before", "after", "comparison", "overall",
    "train_groups", "checkpoints": {"baseline", "mitigated"}, "cancelled"}``; everything but
    ``checkpoints`` is JSON-ready.
    """
    if attribute not in train_set.attributes or attribute not in eval_set.attributes:
        raise DataError(f"attribute {attribute!r} is missing from the training or evaluation data")
    values = train_set.attributes[attribute]
    if not (values != "").any():
        raise DataError(f"attribute {attribute!r} has no values in the training data")
    weights = mitigation_weights(values, strategy)
    columns = audit_columns
    if columns is None:
        columns = [attribute] + [
            c for c in categorical_columns(eval_set.attributes) if c != attribute
        ]

    result = {
        "attribute": attribute,
        "strategy": strategy,
        "source": source,
        "train_groups": group_sizes(values),
        "n_train": len(train_set),
        "n_eval": len(eval_set),
        "before": None,
        "after": None,
        "checkpoints": {"baseline": None, "mitigated": None},
        "cancelled": False,
    }
    runs = [
        ("mitigated", {"sampler_weights" if strategy == "rebalance" else "sample_weights": weights})
    ]
    if baseline_checkpoint is None:
        runs.insert(0, ("baseline", {}))
    elif isinstance(baseline_checkpoint, dict):
        result["checkpoints"]["baseline"] = baseline_checkpoint
    else:
        result["checkpoints"]["baseline"] = load_checkpoint(baseline_checkpoint)
    for i, (name, weighting) in enumerate(runs):
        checkpoint = train(
            train_set, val_set, config, should_stop=should_stop,
            progress=scaled_progress(progress, i / len(runs), 1 / len(runs)), **weighting,
        )  # fmt: skip
        result["checkpoints"][name] = checkpoint
        if checkpoint["cancelled"]:
            result["cancelled"] = True
            return result
    for name, when in (("baseline", "before"), ("mitigated", "after")):
        classifier = Classifier(result["checkpoints"][name], config.device)
        result[when] = audit_classifier(classifier, eval_set, columns, source=source)
    result.update(_compare(result["before"], result["after"], attribute))
    return result


def _compare(before: dict, after: dict, attribute: str) -> dict:
    """Side-by-side numbers of two audits for one attribute."""
    groups_before = before["attributes"][attribute]["groups"]
    groups_after = after["attributes"][attribute]["groups"]
    comparison = {}
    for group, old in groups_before.items():
        new = groups_after[group]
        comparison[group] = {
            "n": old["n"],
            "small": old["small"],
            "accuracy_before": old["accuracy"],
            "accuracy_after": new["accuracy"],
            "accuracy_change": new["accuracy"] - old["accuracy"],
            "macro_f1_before": old["macro_f1"],
            "macro_f1_after": new["macro_f1"],
        }
    gap = "accuracy_difference"
    return {
        "comparison": comparison,
        "overall": {"accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"]},
        "disparity": {
            f"{gap}_before": before["attributes"][attribute]["disparity"][gap],
            f"{gap}_after": after["attributes"][attribute]["disparity"][gap],
        },
        "findings": {"before": len(before["findings"]), "after": len(after["findings"])},
    }
