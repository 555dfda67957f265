"""Accuracy of expression models on FER2013 val: clean, leakage-free and degraded as served.

Faces served by EduMood are cut from photos and screenshots: often small (upscaled to 48 px),
blurred or JPEG-compressed. This prints, for each checkpoint, with and without averaging each
face with its mirror image (the Classifier's default):

- 7-class accuracy and macro-F1, 4-state accuracy, on all of val;
- 7-class accuracy on the val images that have no pixel-identical twin in train;
- 7-class accuracy on val degraded as served faces are (each condition applied to every image);
- 7-class and 4-state accuracy on gallery-like faces: val faces pasted into the tiles of
  72 generated meeting screenshots (tests/ml/gallery.py, 1280-1920 px, 3x2 to 6x5 tiles), found by
  the online sessions' detector and cropped as served; a face the detector misses is not scored.

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

from benchmarks.gallery_eval import faces_needed, fill_galleries, layouts  # noqa: E402
from ml.checkpoint import load_checkpoint  # noqa: E402
from ml.data import load_images  # noqa: E402
from ml.detect import get_detector  # noqa: E402
from ml.evaluate import classification_metrics, predict_labels, true_labels_for  # noqa: E402
from ml.labels import STATES  # noqa: E402
from ml.photo import crop_faces  # noqa: E402
from ml.predict import Classifier, resolve_weights  # noqa: E402

GALLERY_GRIDS = ((3, 2), (4, 3), (5, 4), (6, 5))


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


def gallery_faces(val, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Crops (N, size, size) of the val faces the gallery detector found in generated meeting
    screenshots (gallery_eval's layouts), each face's index into val, and how many faces were
    pasted in all."""
    # Three screenshots per (grid, width, context): about 1,150 faces, a 95 % interval of about
    # +-2.7 points on an accuracy near 0.68.
    cases = layouts(GALLERY_GRIDS, repeats=3)
    picked = np.random.default_rng(seed).choice(len(val), faces_needed(cases), replace=False)
    faces = [Image.fromarray(val.images[j]).convert("RGB") for j in picked]
    detector = get_detector(gallery=True)
    crops, indices = [], []
    for _, _, _, gallery, positions in fill_galleries(faces, cases, seed):
        boxes = detector.detect(gallery.image)
        for p, (x, y, w, h) in zip(positions, gallery.faces, strict=True):
            on = [b for b in boxes if x <= b.x + b.w / 2 < x + w and y <= b.y + b.h / 2 < y + h]
            if len(on) == 1:
                crops.append(crop_faces(gallery.image, on, size)[0])
                indices.append(picked[p])
    return np.stack(crops), np.asarray(indices, dtype=np.int64), len(picked)


def report(
    weights: str, val, keep: np.ndarray, degraded: dict, gallery: tuple, mirror: bool
) -> dict:
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
    crops, indices = gallery
    on_gallery = classifier.predict_proba(crops).argmax(1)
    row["gallery_accuracy"] = float((on_gallery == y_true[indices]).mean())
    row["gallery_state_accuracy"] = float(
        np.mean(
            [
                mapping[classes[p]] == mapping[classes[t]]
                for p, t in zip(on_gallery, y_true[indices], strict=True)
            ]
        )  # fmt: skip
    )
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
    crops, indices, pasted = gallery_faces(val, val.images.shape[-1])
    rows = [
        report(weights, val, keep, degraded, (crops, indices), mirror)
        for weights in args.weights.split(",")
        for mirror in (False, True)
    ]
    if args.json:
        summary = {"val": len(val), "twin_free": len(keep), "gallery_faces_pasted": pasted,
                   "gallery_faces_found": len(indices), "rows": rows}  # fmt: skip
        print(json.dumps(summary, indent=1))
        return
    print(f"FER2013 val: {len(val)} images, {len(keep)} without a pixel-identical twin in train")
    print(f"Gallery-like faces: {len(indices)} of {pasted} pasted val faces found and scored")
    names = list(DEGRADATIONS)
    header = ["weights", "mirror", "acc 7", "F1 7", "acc 4", "F1 4", "twin-free", *names,
              "gallery 7", "gallery 4"]  # fmt: skip
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
            f"{row['gallery_accuracy']:.4f}",
            f"{row['gallery_state_accuracy']:.4f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
