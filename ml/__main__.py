"""`python -m ml SUBCOMMAND ...`: each module in COMMANDS registers its own subcommands."""

import argparse
import importlib
import importlib.util
import os
import sys

from ml.errors import MLError

# One line per module that exposes `add_parser(subparsers)`; modules not written yet are skipped.
COMMANDS = [
    "ml.train",
    "ml.evaluate",
    "ml.predict",
    "ml.cv",
    "ml.fairness",
    "ml.eda",
    "ml.detect",
    "ml.photo",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(prog="python -m ml", description="EduMood ml toolkit")
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("ML_THREADS", "0")),
        help="CPU threads for torch (default: torch's choice)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; errors become one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        if args.threads > 0:
            import torch

            torch.set_num_threads(args.threads)
        return args.func(args) or 0
    except MLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
