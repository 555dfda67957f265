"""Accuracy of expression models on FER2013 val: clean, leakage-free and degraded as served.

Faces served by EduMood are cut from photos and screenshots: often small (upscaled to 48 px),
blurred or JPEG-compressed. This prints, for each checkpoint, with and without averaging each
face with its mirror image (the Classifier's default):

- 7-class accuracy and macro-F1, 4-state accuracy, on all of val;
- 7-class accuracy on the val images that have no pixel-identical twin in train;
- 7-class accuracy on val degraded as served faces are (each condition applied to every image).

    python benchmarks/model_report.py [--weights default,CKPT,...] [--data DIR] [--json]
"""

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.checkpoint import load_checkpoint  # noqa: E402
from ml.data import load_images  # noqa: E402
from ml.evaluate import classification_metrics, predict_labels, true_labels_for  # noqa: E402
from ml.labels import STATES  # noqa: E402
from ml.predict import Classifier, resolve_weights  # noqa: E402


def _resample(size: int):
    def apply(face: Image.Image) -> Image.Image:
        small = face.resize((size, size), Image.Resampling.BOX)
        return small.resize(face.size, Image.Resampling.BILINEAR)

    return apply


def _jpeg(quality: int):
    def apply(face: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        face.save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("L")

    return apply


def _blur(sigma: float):
    return lambda face: face.filter(ImageFilter.GaussianBlur(sigma))


def _both(first, second):
    return lambda face: second(first(face))


# Each condition stands for a kind of served face: a face 24 or 16 px tall in the photo,
# upscaled to 48; a soft focus; a compressed screenshot; a small face in a compressed photo.
DEGRADATIONS = {
    "24 px": _resample(24),
    "16 px": _resample(16),
    "blur 1.0": _blur(1.0),
    "JPEG q30": _jpeg(30),
    "24 px + JPEG q50": _both(_resample(24), _jpeg(50)),
}


def degrade(images: np.ndarray, condition) -> np.ndarray:
    return np.stack([np.asarray(condition(Image.fromarray(face))) for face in images])


def twin_free(val_images: np.ndarray, train_images: np.ndarray) -> np.ndarray:
    """Indices of val images with no pixel-identical image in train."""
    train_hashes = {hashlib.sha1(face.tobytes()).digest() for face in train_images}
    return np.asarray(
        [
            i
            for i, face in enumerate(val_images)
            if hashlib.sha1(face.tobytes()).digest() not in train_hashes
        ],
        dtype=np.int64,
    )


def score(classifier: Classifier, val, y_true: np.ndarray, images: np.ndarray | None = None):
    if images is not None:
        val = val.subset(np.arange(len(val)))
        val.images = images
    predicted = predict_labels(classifier, val)
    return predicted, float((predicted == y_true).mean())


def report(weights: str, val, keep: np.ndarray, degraded: dict, mirror: bool) -> dict:
    classifier = Classifier(load_checkpoint(resolve_weights(weights)), mirror_average=mirror)
    classes = classifier.classes
    y_true = true_labels_for(val, classes)
    started = time.perf_counter()
    predicted, accuracy = score(classifier, val, y_true)
    seconds = time.perf_counter() - started
    metrics = classification_metrics(y_true, predicted, classes)
    mapping = classifier.state_mapping
    states = classification_metrics(
        [mapping[classes[i]] for i in y_true], [mapping[classes[i]] for i in predicted], STATES
    )
    row = {
        "weights": weights,
        "mirror_average": mirror,
        "accuracy": accuracy,
        "macro_f1": metrics["macro_f1"],
        "state_accuracy": states["accuracy"],
        "state_macro_f1": states["macro_f1"],
        "twin_free_accuracy": float((predicted[keep] == y_true[keep]).mean()),
        "faces_per_second": len(val) / seconds,
        "degraded": {},
    }
    for name, images in degraded.items():
        row["degraded"][name] = score(classifier, val, y_true, images)[1]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="default", help="comma-separated checkpoints")
    parser.add_argument("--data", default="../shared/data/fer2013")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    val = load_images(data / "val")
    keep = twin_free(val.images, load_images(data / "train").images)
    degraded = {name: degrade(val.images, condition) for name, condition in DEGRADATIONS.items()}
    rows = [
        report(weights, val, keep, degraded, mirror)
        for weights in args.weights.split(",")
        for mirror in (False, True)
    ]
    if args.json:
        print(json.dumps({"val": len(val), "twin_free": len(keep), "rows": rows}, indent=1))
        return
    print(f"FER2013 val: {len(val)} images, {len(keep)} without a pixel-identical twin in train")
    names = list(DEGRADATIONS)
    header = ["weights", "mirror", "acc 7", "F1 7", "acc 4", "F1 4", "twin-free", *names]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        cells = [
            row["weights"],
            "yes" if row["mirror_average"] else "no",
            *(
                f"{row[k]:.4f}"
                for k in ("accuracy", "macro_f1", "state_accuracy", "state_macro_f1")
            ),
            f"{row['twin_free_accuracy']:.4f}",
            *(f"{row['degraded'][n]:.4f}" for n in names),
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
