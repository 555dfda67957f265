"""Helpers shared by the `python -m ml` subcommands (output, progress bar, common options)."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ml.errors import MLError
from ml.recipe import TrainConfig, recipe_options


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


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field (shared by train, kfold and mitigate)."""
    for option in recipe_options(machine=True):
        flag = "--" + option.name.replace("_", "-")
        if option.type is bool:
            # A switch that flips the default: --no-augment, --class-weighting.
            flag = f"--no-{flag[2:]}" if option.default else flag
            action = "store_false" if option.default else "store_true"
            hint = ("turn off: " if option.default else "") + option.help
            parser.add_argument(flag, dest=option.name, action=action, help=hint)
            continue
        parser.add_argument(
            flag,
            type=option.type,
            default=option.default,
            choices=option.choices,
            help=f"{option.help} (default: {option.default})",
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig from the options added by add_train_options."""
    return TrainConfig(**{o.name: getattr(args, o.name) for o in recipe_options(machine=True)})


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
