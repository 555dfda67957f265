"""Whole-photo analysis: end-to-end time per photo, and the effect of the crop framing.

    nice -n 10 .venv/bin/python benchmarks/photo_latency.py [--weights default] [--json]
    nice -n 10 .venv/bin/python benchmarks/photo_latency.py --fer 1400

Latency (group photos): milliseconds per photo to load, detect, crop and classify, with all
faces of a photo in one forward pass (as analyse_image does) and with one forward pass per
face, on 1 torch thread (--torch-threads) and 2 onnxruntime threads; also for the photos
with 20-40 faces, and for those enlarged to a 1600 px long side (the size of a classroom
photo; the group photos are 1024 px wide). Each detection mode (ml.detect.MODES) runs in
turn on the same photos; the end-to-end time per photo is given as mean, median and 95th
percentile, with the CPU time of the process (all threads): on a busy machine the wall time
also measures the neighbours, while on idle cores the wall time is at most the CPU time.
RetinaFace alone (the fast mode before issue 21) runs beside them, in the same
process, so the times compare. Why 1 torch thread: on 2 busy cores, 2 OpenMP threads that
spin-wait made one 48x48 forward pass take 290 ms instead of 3.7 ms (OMP_WAIT_POLICY=PASSIVE
also cures it).

FER faces in scenes (--fer N): N FER2013 validation faces, each pasted 3x enlarged into a
random background and detected: the detection rate overall and per attribute group (from
attributes.csv; a face the detector misses is a student the analysis leaves out). Each found
face is then cropped with several expansion factors and classified: agreement with the
classifier's prediction on the original crop, and accuracy, per factor. The pasted face has
no real surroundings (hair, neck) beyond the FER square, so wide crops see background there
that a real photo would not show.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.data import attach_attributes, load_images  # noqa: E402
from ml.detect import MODES, Detector, RetinaFaceDetector, get_detector, load_annotations  # noqa: E402
from ml.photo import crop_faces, detect_faces  # noqa: E402
from ml.predict import Classifier  # noqa: E402
from ml.safety import open_image  # noqa: E402

FRAMING_SCALES = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5)


def ms(seconds: float) -> float:
    return 1000 * seconds


def latency(folder: Path, classifier: Classifier, detector: Detector, names: list[str],
            long_side: int | None = None) -> list[dict]:  # fmt: skip
    """Per-photo stage times (ms) over the named photos of the folder, each enlarged to
    `long_side` first when given (in the load time)."""
    detect_faces(open_image(folder / "images" / names[0]), detector)  # warm up
    rows = []
    for name in names:
        c0 = time.process_time()
        t0 = time.perf_counter()
        image = open_image(folder / "images" / name)
        if long_side:
            factor = long_side / max(image.size)
            image = image.resize((round(image.width * factor), round(image.height * factor)))
        t1 = time.perf_counter()
        boxes = detect_faces(image, detector)
        t2 = time.perf_counter()
        crops = crop_faces(image, boxes, classifier.input_size)
        t3 = time.perf_counter()
        if len(crops):
            classifier.predict_proba(crops)
        t4 = time.perf_counter()
        cpu = time.process_time() - c0
        for crop in crops:
            classifier.predict_proba(crop[None])
        t5 = time.perf_counter()
        rows.append(dict(faces=len(boxes), load=ms(t1 - t0), detect=ms(t2 - t1),
                         crop=ms(t3 - t2), classify_batched=ms(t4 - t3),
                         classify_per_face=ms(t5 - t4), cpu_batched=ms(cpu)))  # fmt: skip
    return rows


def summarize(rows: list[dict]) -> dict:
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    common = out["load"] + out["detect"] + out["crop"]
    out["total_batched"] = common + out["classify_batched"]
    out["total_per_face"] = common + out["classify_per_face"]
    totals = [r["load"] + r["detect"] + r["crop"] + r["classify_batched"] for r in rows]
    out["median_batched"] = float(np.median(totals))
    out["p95_batched"] = float(np.percentile(totals, 95))
    out["photos"] = len(rows)
    return out


def random_background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Blurred colour noise over a colour gradient: a busy but face-free scene."""
    width, height = size
    ramp = np.linspace(0, 1, width)[None, :, None]
    base = rng.uniform(30, 220, 3) * (1 - ramp) + rng.uniform(30, 220, 3) * ramp
    noise = rng.normal(0, 40, (height // 8, width // 8, 3))
    noise = np.asarray(Image.fromarray(np.clip(noise + 128, 0, 255).astype(np.uint8))
                       .resize(size, Image.Resampling.BICUBIC)).astype(float) - 128  # fmt: skip
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(2))


def fer_in_scenes(data_dir: Path, classifier: Classifier, n: int, seed: int = 0) -> dict:
    """Detection rate of pasted FER faces by attribute group; agreement and accuracy of their
    re-detected, re-cropped versions per crop expansion factor."""
    val = load_images(data_dir / "fer2013" / "val", size=48)
    val = attach_attributes(val, data_dir / "fer2013" / "attributes.csv")
    rng = np.random.default_rng(seed)
    index = rng.choice(len(val), size=min(n, len(val)), replace=False)
    original = classifier.predict_proba(val.images[index]).argmax(1)
    truth = np.array([classifier.classes.index(val.classes[y]) for y in val.labels[index]])
    detector = get_detector()
    crops = {s: [] for s in FRAMING_SCALES}
    found = []
    for k, i in enumerate(index):
        canvas = random_background(rng, (480, 360))
        side = 144
        x, y = int(rng.integers(0, 480 - side)), int(rng.integers(0, 360 - side))
        canvas.paste(Image.fromarray(val.images[i]).resize((side, side), Image.Resampling.BICUBIC)
                     .convert("RGB"), (x, y))  # fmt: skip
        boxes = [b for b in detector.detect(canvas)
                 if x <= b.x + b.w / 2 < x + side and y <= b.y + b.h / 2 < y + side]  # fmt: skip
        if boxes:
            found.append(k)
            for s in FRAMING_SCALES:
                crops[s].append(crop_faces(canvas, boxes[:1], classifier.input_size, scale=s)[0])
    found = np.array(found)
    detected = np.isin(np.arange(len(index)), found)
    by_group = {}
    for column in ("race", "gender", "age_group"):
        values = val.attributes.get(column, np.array([], dtype=object))[index]
        for group in sorted(set(values.tolist()) - {""}):
            members = values == group
            if members.sum() >= 30:
                rate = float(detected[members].mean())
                by_group[f"{column}={group}"] = (rate, int(members.sum()))
    result = {
        "faces": len(index),
        "detected": len(found),
        "detection_by_group": by_group,
        "original_accuracy": float((original[found] == truth[found]).mean()),
        "by_scale": {},
    }
    for s in FRAMING_SCALES:
        predicted = classifier.predict_proba(np.stack(crops[s])).argmax(1)
        result["by_scale"][s] = {
            "agreement": float((predicted == original[found]).mean()),
            "accuracy": float((predicted == truth[found]).mean()),
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("EDUMOOD_DATA_DIR", "../shared/data")  # relative to the repo root
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--weights", default="default")
    parser.add_argument("--fer", type=int, metavar="N", help="run the FER-in-scenes study instead")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--only", help="run only detectors whose name contains this text")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    classifier = Classifier.load(args.weights, device="cpu")

    if args.fer:
        result = fer_in_scenes(args.data, classifier, args.fer)
        if args.json:
            print(json.dumps(result, indent=1))
            return 0
        print(f"{result['detected']}/{result['faces']} pasted FER val faces detected; accuracy "
              f"of the original crops on them {result['original_accuracy']:.3f} "
              f"({classifier.description}, val accuracy "
              f"{classifier.metrics.get('val_accuracy')})")  # fmt: skip
        for group, (rate, count) in result["detection_by_group"].items():
            print(f"  detected {rate:.3f} of {count:4d} faces with {group}")
        for s, r in result["by_scale"].items():
            print(f"  crop = {s:.1f} x box height: agreement with original "
                  f"{r['agreement']:.3f}, accuracy {r['accuracy']:.3f}")  # fmt: skip
        return 0

    folder = args.data / "group-photos"
    truth = load_annotations(folder)
    names = sorted(truth)
    crowded = [n for n in names if 20 <= len(truth[n]) <= 40]
    detectors = {"RetinaFace alone (fast before issue 21)": RetinaFaceDetector(),
                 **{mode: get_detector(mode=mode) for mode in MODES}}  # fmt: skip
    result = {}
    for mode, detector in detectors.items():
        if args.only and args.only not in mode:
            continue
        rows = latency(folder, classifier, detector, names)
        result[f"{mode}: all"] = summarize(rows)
        in_crowd = [r for r, n in zip(rows, names, strict=True) if n in crowded]
        result[f"{mode}: 20-40 faces"] = summarize(in_crowd)
        rows = latency(folder, classifier, detector, crowded, long_side=1600)
        result[f"{mode}: 20-40 faces at 1600 px"] = summarize(rows)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for name, s in result.items():
        print(f"{name}: {s['photos']} photos, {s['faces']:.1f} faces found on average")
        print(f"  load {s['load']:.1f} + detect {s['detect']:.1f} + crop {s['crop']:.1f} ms")
        print(f"  classify: one batch {s['classify_batched']:.1f} ms, one pass per face "
              f"{s['classify_per_face']:.1f} ms")  # fmt: skip
        print(f"  end to end: batched {s['total_batched']:.1f} ms/photo (median "
              f"{s['median_batched']:.1f}, 95th percentile {s['p95_batched']:.1f}; CPU time of "
              f"the process {s['cpu_batched']:.1f} ms), per face "
              f"{s['total_per_face']:.1f} ms/photo")  # fmt: skip
    print(f"torch threads {args.torch_threads}, onnxruntime threads 2, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}, model {classifier.description}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
