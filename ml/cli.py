"""Helpers shared by the `python -m ml` subcommands (output, progress bar, common options)."""

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

from ml.errors import MLError
from ml.models import ARCHITECTURES, DEFAULT_ARCH
from ml.preprocess import NORMALISATIONS


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit(args: argparse.Namespace, payload, text: str) -> None:
    """Print `payload` as JSON with --json, else the human-readable `text`."""
    if getattr(args, "json", False):
        json.dump(payload, sys.stdout, default=_plain)
        sys.stdout.write("\n")
    else:
        print(text)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON to stdout")


def add_train_options(parser: argparse.ArgumentParser, arch_required: bool = False) -> None:
    """The TrainConfig options shared by train, kfold and mitigate."""
    from ml.train import TrainConfig

    d = TrainConfig()
    parser.add_argument(
        "--arch",
        default=None if arch_required else DEFAULT_ARCH,
        required=arch_required,
        choices=list(ARCHITECTURES),
    )
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], default=d.optimizer)
    parser.add_argument("--scheduler", choices=["onecycle", "cosine", "none"], default=d.scheduler)
    parser.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="stop after this many epochs without val improvement (0: never)",
    )
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--class-weighting", action="store_true")
    parser.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default=d.device)
    parser.add_argument("--normalisation", choices=NORMALISATIONS, default=d.normalisation)
    parser.add_argument("--input-size", type=int, default=d.input_size)
    parser.add_argument("--precision", choices=["auto", "fp32"], default=d.precision)
    parser.add_argument(
        "--input-blur",
        type=float,
        default=d.input_blur,
        help="Gaussian sigma (px) for validation and serving inputs; training images unchanged",
    )


def config_from_args(args: argparse.Namespace):
    """A TrainConfig from the options added by add_train_options."""
    from ml.train import TrainConfig

    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


class TrainProgress:
    """train()'s progress callback for the CLI: a tqdm bar on a terminal, else one line per epoch.

    Everything goes to stderr, so --json output on stdout stays parseable.
    """

    def __init__(self):
        self.bar = None
        self.tty = sys.stderr.isatty()

    def __call__(self, p) -> None:
        if not self.tty:
            if p.phase == "val":
                val = f" val_acc={p.val_accuracy:.4f}" if p.val_accuracy is not None else ""
                print(
                    f"epoch {p.epoch}/{p.epochs} loss={p.loss:.4f} acc={p.accuracy:.4f}{val} "
                    f"eta={p.eta_seconds / 60:.1f}min",
                    file=sys.stderr,
                    flush=True,
                )
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=p.epochs * p.steps,
                unit="batch",
                file=sys.stderr,
                dynamic_ncols=True,
                initial=(p.epoch - 1) * p.steps,
            )
        self.bar.n = (p.epoch - 1) * p.steps + p.step
        val = f"{p.val_accuracy:.3f}" if p.val_accuracy is not None else "-"
        self.bar.set_description(f"epoch {p.epoch}/{p.epochs}", refresh=False)
        self.bar.set_postfix(loss=f"{p.loss:.3f}", acc=f"{p.accuracy:.3f}", val=val, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def require_path(path: str, what: str) -> Path:
    """The path, or an MLError naming what was expected there."""
    p = Path(path)
    if not p.exists():
        raise MLError(f"{what} {path!r} does not exist")
    return p
