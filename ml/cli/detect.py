"""`python -m ml detect`: face boxes in photos, in original pixels."""

import argparse
from pathlib import Path

from ml.cli import common
from ml.photo import detect_faces
from ml.safety import open_image


def add_parser(subparsers) -> None:
    """Register `python -m ml detect FILE_OR_DIR... [--json]`."""
    parser = subparsers.add_parser("detect", help="find faces in photos (original-pixel boxes)")
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    common.add_detector_options(parser)
    common.add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    detector = common.detector_from_args(args)

    def one(path: Path) -> dict:
        image = open_image(path)
        faces = detect_faces(image, detector)
        return {
            "file": str(path),
            "width": image.width,
            "height": image.height,
            "faces": [f.to_dict() for f in faces],
        }

    results, failed = common.run_per_file(common.image_files(args.paths), one)
    lines = [
        f"{r['file']}: {r['error']}" if "error" in r else f"{r['file']}: {len(r['faces'])} faces"
        for r in results
    ]
    common.emit(args, results, "\n".join(lines))
    return 2 if failed else 0
