"""Helpers shared by the `python -m ml` subcommands: output, progress, common options, files."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ml.detect import MODES, Detector, get_detector
from ml.errors import MLError
from ml.options import DEFAULT_DETECTION_MODE, options_of
from ml.recipe import TrainConfig
from ml.safety import IMAGE_EXTENSIONS
from ml.train import Progress


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


def add_options(parser: argparse.ArgumentParser, options_class, names=None, notes=None) -> None:
    """One option per field of an options class (ml.options), or of those `names`; `notes`
    adds CLI-only words to a field's help."""
    for option in options_of(options_class, machine=True):
        if names is not None and option.name not in names:
            continue
        hint = option.help + ((notes or {}).get(option.name) or "")
        if option.type is bool:
            # A switch that flips the default: --no-augment, --class-weighting.
            flag = f"--no-{option.cli_flag[2:]}" if option.default else option.cli_flag
            action = "store_false" if option.default else "store_true"
            hint = ("turn off: " if option.default else "") + hint
            parser.add_argument(flag, dest=option.cli_dest, action=action, help=hint)
        elif option.required:
            parser.add_argument(
                option.cli_flag, dest=option.cli_dest, type=option.type, required=True,
                choices=option.choices, help=hint,
            )  # fmt: skip
        else:
            if option.default not in ("", ()):
                hint += f" (default: {option.default_text})"
            parser.add_argument(
                option.cli_flag, dest=option.cli_dest, default=option.default,
                type=_names if option.is_list else option.type, choices=option.choices, help=hint,
            )  # fmt: skip


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def options_from_args(args: argparse.Namespace, options_class, names=None):
    """An instance of an options class from the flags add_options added (the rest default)."""
    return options_class(**{
        o.name: getattr(args, o.cli_dest) for o in options_of(options_class, machine=True)
        if names is None or o.name in names
    })  # fmt: skip


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field (shared by train, kfold and mitigate)."""
    add_options(parser, TrainConfig)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig from the options added by add_train_options."""
    return options_from_args(args, TrainConfig)


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


class RunsProgress:
    """CLI progress over several consecutive train() runs: a titled bar (or lines) per run.

    A run is recognised as new when train()'s (epoch, step, phase) position goes backwards.
    """

    def __init__(self, titles: list[str]):
        self.titles = titles
        self.run = -1
        self.position = None
        self.current = None

    def __call__(self, p: Progress) -> None:
        position = (p.epoch, p.step, p.phase == "val")
        if self.position is None or position < self.position:
            self.close()
            self.run += 1
            title = self.titles[self.run] if self.run < len(self.titles) else f"run {self.run + 1}"
            print(title, file=sys.stderr, flush=True)
            self.current = TrainProgress()
        self.position = position
        self.current(p)

    def close(self) -> None:
        if self.current is not None:
            self.current.close()


def image_files(paths: list[str]) -> list[Path]:
    """Image files named directly or found (recursively, sorted) in the given folders."""
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
        elif path.is_file():
            files.append(path)
        else:
            raise MLError(f"{raw!r} does not exist")
    return files


def run_per_file(files: list[Path], work) -> tuple[list[dict], bool]:
    """`work(path) -> dict` for each file; a file that fails gives {"file", "error"} instead."""
    results, failed = [], False
    for path in files:
        try:
            results.append(work(path))
        except MLError as exc:
            results.append({"file": str(path), "error": str(exc)})
            failed = True
    return results, failed


def add_detector_options(parser: argparse.ArgumentParser) -> None:
    """Options that tune the default detector (shared by `detect` and `analyse`)."""
    parser.add_argument(
        "--mode", choices=MODES, default=DEFAULT_DETECTION_MODE, help="detection settings"
    )
    parser.add_argument("--long-side", type=int, help="detect at this long side (px)")
    parser.add_argument("--score-threshold", type=float)
    parser.add_argument("--flip", action="store_true", help="add a mirrored pass (about 2x time)")
    parser.add_argument(
        "--gallery", action="store_true", help="meeting screenshots: detect tile by tile"
    )


def detector_from_args(args: argparse.Namespace) -> Detector:
    """The detector selected by add_detector_options' flags."""
    options = {"long_side": args.long_side, "score_threshold": args.score_threshold}
    if args.flip:
        options["flip"] = True
    return get_detector(
        "retinaface",
        args.mode,
        gallery=args.gallery,
        **{k: v for k, v in options.items() if v is not None},
    )
