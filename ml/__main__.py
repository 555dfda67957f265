"""`python -m ml SUBCOMMAND ...`: each module of ml/cli/ registers one subcommand."""

import argparse
import importlib
import os
import sys

from ml.errors import MLError

# One module per subcommand, each with `add_parser(subparsers)`, in the order --help lists them.
COMMANDS = [
    "train", "evaluate", "kfold", "audit", "mitigate", "ensemble", "predict", "detect", "analyse",
    "eda",
]  # fmt: skip


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
        importlib.import_module(f"ml.cli.{name}").add_parser(subparsers)
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
