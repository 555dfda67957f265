"""`python -m ml predict`: classify face images with a checkpoint."""

import numpy as np

from ml.cli import common
from ml.data import decode_image
from ml.errors import InvalidImage
from ml.predict import Classifier


def add_parser(subparsers) -> None:
    """Register `python -m ml predict`."""
    parser = subparsers.add_parser("predict", help="classify face images with a checkpoint")
    parser.add_argument("--weights", default="default", help="checkpoint path or 'default'")
    parser.add_argument("--device", default="auto")
    parser.add_argument("files", nargs="+", metavar="FILE_OR_DIR")
    common.add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    classifier = Classifier.load(args.weights, device=args.device)
    files = common.image_files(args.files)
    faces, ok, results = [], [], []
    for path in files:
        try:
            faces.append(decode_image(path, classifier.input_size))
            ok.append(len(results))
            results.append({"file": str(path)})
        except InvalidImage as exc:
            results.append({"file": str(path), "error": str(exc)})
    if faces:
        probabilities = classifier.predict_proba(np.stack(faces))
        for row, p in zip(ok, probabilities, strict=True):
            label = classifier.classes[int(p.argmax())]
            results[row].update(
                label=label,
                state=classifier.state_of(label),
                probabilities={
                    c: round(float(v), 6) for c, v in zip(classifier.classes, p, strict=True)
                },
            )
    text = "\n".join(
        f"{r['file']}: "
        + (
            f"error: {r['error']}"
            if "error" in r
            else f"{r['label']} ({r['probabilities'][r['label']]:.2f}) -> {r['state']}"
        )
        for r in results
    )
    common.emit(args, results, text or "no image files found")
    return 0 if all("error" not in r for r in results) else 1
