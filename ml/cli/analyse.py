"""`python -m ml analyse`: find and classify every face in photos; optional annotated copies."""

import argparse
from collections import Counter
from pathlib import Path

from PIL import Image

from ml.cli import common
from ml.photo import analyse_image, annotate
from ml.predict import Classifier
from ml.privacy import protected_copy
from ml.safety import open_image


def add_parser(subparsers) -> None:
    """Register `python -m ml analyse --weights CKPT|default FILE_OR_DIR... [--annotate DIR]`."""
    parser = subparsers.add_parser(
        "analyse", help="find and classify every face in photos (boxes, probabilities, states)"
    )
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    parser.add_argument("--weights", default="default", help="checkpoint path or 'default'")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--annotate",
        metavar="DIR",
        type=Path,
        help="write into DIR each photo's protected copy (no recognisable face or name, as "
        "EduMood stores it) with boxes coloured by state",
    )
    common.add_detector_options(parser)
    common.add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    classifier = Classifier.load(args.weights, device=args.device)
    detector = common.detector_from_args(args)
    if args.annotate:
        args.annotate.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()

    def one(path: Path) -> dict:
        image = open_image(path)
        analysis = analyse_image(image, classifier, detector)
        result = {"file": str(path), **analysis.to_dict()}
        if args.annotate:
            name, n = f"{path.stem}.jpg", 1
            while name in written:  # same file name in two folders
                n += 1
                name = f"{path.stem}-{n}.jpg"
            written.add(name)
            boxes = [(f.box.x, f.box.y, f.box.w, f.box.h) for f in analysis.faces]
            copy = protected_copy(image, boxes).resize(image.size, Image.Resampling.BICUBIC)
            annotate(copy, analysis).save(args.annotate / name, quality=90)
            result["annotated"] = str(args.annotate / name)
        return result

    results, failed = common.run_per_file(common.image_files(args.paths), one)
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['file']}: error: {r['error']}")
        else:
            states = Counter(f["state"] for f in r["faces"])
            summary = ", ".join(f"{s} {n}" for s, n in states.most_common()) or "no faces"
            lines.append(f"{r['file']}: {len(r['faces'])} faces: {summary}")
    common.emit(args, results, "\n".join(lines) or "no image files found")
    return 2 if failed else 0
