"""`python -m ml eda`: class balance, intensities, duplicates and sample grids of a dataset."""

from ml.cli import common
from ml.data import attach_attributes, load_images
from ml.eda import write_eda


def add_parser(subparsers) -> None:
    """Register `python -m ml eda`."""
    parser = subparsers.add_parser("eda", help="class balance, intensities, duplicates, samples")
    parser.add_argument("--data", required=True, help="folder of class folders, or a zip")
    parser.add_argument("--out", required=True, help="folder for summary.json, HTML and PNG files")
    parser.add_argument("--attributes", help="CSV with a `file` column (group sizes per column)")
    parser.add_argument("--size", type=int, default=48, help="image size to load at")
    common.add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    data = load_images(common.require_path(args.data, "dataset"), size=args.size)
    if args.attributes:
        data = attach_attributes(data, common.require_path(args.attributes, "attributes CSV"))
    result = write_eda(data, args.out)
    summary = result["summary"]
    text = [f"{summary['n']} images, {len(summary['classes'])} classes; imbalance ratio "
            f"{summary['imbalance_ratio']:.1f}"]  # fmt: skip
    text += [f"  {name:>12}: {count}" for name, count in summary["class_counts"].items()]
    text += [f"warning: {w}" for w in summary["warnings"]]
    text.append(f"wrote {len(result['files'])} files to {result['out_dir']}")
    common.emit(args, result, "\n".join(text))
    return 0
