"""`python -m ml ensemble`: combine finished checkpoints into one model and prepare int8 serving."""

import numpy as np
import torch

from ml.checkpoint import (
    combine_checkpoints,
    load_checkpoint,
    models_from_checkpoint,
    save_checkpoint,
)
from ml.cli import common
from ml.data import load_images
from ml.device import model_input
from ml.evaluate import evaluate_classifier
from ml.int8 import activation_ranges
from ml.predict import Classifier, resolve_weights


def add_parser(subparsers) -> None:
    """Register `python -m ml ensemble`."""
    parser = subparsers.add_parser(
        "ensemble", help="combine checkpoints into one model; record int8 activation ranges"
    )
    parser.add_argument(
        "--members", nargs="+", required=True, help="checkpoints (or 'default'), one or more"
    )
    parser.add_argument(
        "--calibrate",
        help="training images (folder of class folders) whose activation ranges let the CPU "
        "serve the model in int8; never the validation or test images",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=2048,
        help="images drawn from --calibrate, the same for the same data (default: 2048)",
    )
    parser.add_argument(
        "--val",
        help="validation images (folder of class folders): the combination's accuracy, as "
        "served (int8 where calibrated), is stored in its metrics",
    )
    parser.add_argument("--out", required=True, help="the combined checkpoint")
    common.add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    checkpoints = [load_checkpoint(resolve_weights(m)) for m in args.members]
    combined = checkpoints[0] if len(checkpoints) == 1 else combine_checkpoints(checkpoints)
    if args.calibrate:
        data = load_images(
            common.require_path(args.calibrate, "calibration images"), combined["input_size"]
        )
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(len(data), min(args.calibration_images, len(data)), False))
        images = torch.from_numpy(data.images[pick])
        batches = [
            model_input(images[i : i + 256], combined["normalisation"], combined["input_blur"])
            for i in range(0, len(images), 256)
        ]
        combined["int8"] = [
            activation_ranges(model.eval(), batches) for model in models_from_checkpoint(combined)
        ]
    if args.val:
        val = load_images(
            common.require_path(args.val, "validation images"), combined["input_size"]
        )
        metrics = evaluate_classifier(Classifier(combined, device="cpu"), val)
        combined["metrics"] = {
            **combined["metrics"],
            "val_accuracy": metrics["accuracy"],
            "val_macro_f1": metrics["macro_f1"],
        }
    save_checkpoint(args.out, combined)
    models = 1 + len(combined.get("members") or [])
    measured = {k: v for k, v in combined["metrics"].items() if k.startswith("val_")}
    payload = {"out": str(args.out), "models": models, "int8": "int8" in combined, **measured}
    common.emit(
        args,
        payload,
        f"saved {args.out}: {models} model(s)"
        + (", int8 activation ranges recorded" if "int8" in combined else "")
        + (f", val accuracy {payload['val_accuracy']:.4f}" if "val_accuracy" in payload else ""),
    )
    return 0
