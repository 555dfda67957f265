"""`python -m ml evaluate`: score a checkpoint on a labelled folder."""

import json
from pathlib import Path

from ml.cli import common
from ml.data import load_images
from ml.evaluate import evaluate_classifier
from ml.predict import Classifier
from ml.quantify import measure_calibration


def add_parser(subparsers) -> None:
    """Register `python -m ml evaluate`."""
    parser = subparsers.add_parser("evaluate", help="score a checkpoint on a labelled folder")
    parser.add_argument("--weights", required=True, help="checkpoint path or 'default'")
    parser.add_argument("--data", required=True, help="folder of class folders, or a zip")
    parser.add_argument(
        "--map-states",
        action="store_true",
        help="also score the classroom states the classes map to",
    )
    parser.add_argument(
        "--calibration-out",
        help="also write the model's state-level calibration on this data (JSON, ml.quantify)",
    )
    parser.add_argument("--device", default="auto")
    common.add_json_flag(parser)
    parser.set_defaults(func=run)


def format_metrics(metrics: dict) -> str:
    """A plain-text report: headline numbers, per-class table, confusion matrix."""
    lines = [
        f"n={metrics['n']}  accuracy={metrics['accuracy']:.4f}  macro_f1={metrics['macro_f1']:.4f}"
        f"  macro_precision={metrics['macro_precision']:.4f}"
        f"  macro_recall={metrics['macro_recall']:.4f}",
        f"{'class':>10} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}",
    ]
    for c, m in metrics["per_class"].items():
        lines.append(
            f"{c:>10} {m['precision']:9.3f} {m['recall']:7.3f} {m['f1']:7.3f} {m['support']:7d}"
        )
    width = max(len(c) for c in metrics["classes"])
    lines.append("confusion matrix (rows: true, columns: predicted)")
    lines.append(" " * (width + 1) + " ".join(f"{c[:6]:>6}" for c in metrics["classes"]))
    for c, row in zip(metrics["classes"], metrics["confusion_matrix"], strict=True):
        lines.append(f"{c:>{width}} " + " ".join(f"{v:6d}" for v in row))
    return "\n".join(lines)


def run(args) -> int:
    classifier = Classifier.load(args.weights, device=args.device)
    data = load_images(common.require_path(args.data, "dataset"), size=classifier.input_size)
    metrics = evaluate_classifier(classifier, data, map_states=args.map_states)
    metrics["weights"] = str(args.weights)
    metrics["unreadable_files"] = [{"file": f, "reason": r} for f, r in data.errors]
    if args.calibration_out:
        calibration = measure_calibration(classifier, data).to_json()
        Path(args.calibration_out).write_text(json.dumps(calibration, indent=1) + "\n")
    text = format_metrics(metrics)
    if "unmapped" in metrics:
        text = "classroom states:\n" + text + "\n\nclasses:\n" + format_metrics(metrics["unmapped"])
    common.emit(args, metrics, text)
    return 0
