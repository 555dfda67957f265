"""Face detection on annotated group photos: recall, false boxes and time per setting.

    nice -n 10 .venv/bin/python benchmarks/detect_eval.py [--data ../shared/data] [--json]

For each detector setting: recall of valid faces with a shorter side >= 20 px and >= 40 px
(IoU >= 0.5), false boxes per photo, and milliseconds per photo for `detect()` on an already
decoded image, with onnxruntime on 2 threads. Each setting also prints its score-threshold
curve (one run at a low threshold, filtered afterwards).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.detect import MODES, RetinaFaceDetector, load_annotations, score_detections  # noqa: E402

# name -> RetinaFaceDetector options; the modes are those of get_detector(mode=...).
SETTINGS = {
    "before issue 17 (= fast)": MODES["fast"],
    "package default (native, score 0.9, no coarse pass)": dict(
        long_side=1024, score_threshold=0.9, coarse_side=None
    ),
    "native 1024": dict(long_side=1024),
    "long side 1536": dict(long_side=1536),
    "long side 1152 + flip": dict(flip=True),
    "1152 + fine pass at 2x": dict(upscale=2.0),
    "1152 + flip + fine pass at 2x (= thorough)": MODES["thorough"],
}
CURVE = (0.5, 0.6, 0.7, 0.75, 0.8, 0.825, 0.85, 0.875, 0.9)


def run_setting(images: dict[str, Image.Image], options: dict) -> tuple[dict, float, float]:
    """Detections per photo at a low threshold (for the curve), wall and CPU ms per photo.

    CPU time (all threads of the process) is reported beside wall time because the shared
    development machine is often busy: wall time then measures the neighbours too.
    """
    detector = RetinaFaceDetector(**{**options, "score_threshold": min(CURVE)})
    detector.detect(next(iter(images.values())))  # warm up the session
    found, wall, cpu = {}, time.perf_counter(), time.process_time()
    for name, image in images.items():
        found[name] = detector.detect(image)
    n = len(images)
    return found, 1000 * (time.perf_counter() - wall) / n, 1000 * (time.process_time() - cpu) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("EDUMOOD_DATA_DIR", "../shared/data")  # relative to the repo root
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--only", help="run only settings whose name contains this text")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    folder = args.data / "group-photos"
    truth = load_annotations(folder)
    images = {name: Image.open(folder / "images" / name).convert("RGB") for name in truth}
    rows = []
    for name, options in SETTINGS.items():
        if args.only and args.only not in name:
            continue
        found, ms, cpu_ms = run_setting(images, options)
        threshold = options.get("score_threshold", RetinaFaceDetector().score_threshold)
        curve = []
        for t in sorted({*CURVE, threshold}):
            kept = {k: [b for b in v if b.score >= t] for k, v in found.items()}
            score = score_detections(kept, truth)
            recall = score["recall"]
            curve.append(dict(threshold=t, recall20=recall[20], recall40=recall[40],
                              false_per_photo=score["false_per_photo"]))  # fmt: skip
        at = next(c for c in curve if c["threshold"] == threshold)
        rows.append(dict(setting=name, options=options, ms_per_photo=ms, cpu_ms_per_photo=cpu_ms,
                         **at, curve=curve))  # fmt: skip
        if not args.json:
            print(f"{name:52s} thr {threshold:.3f}  recall>=20 {at['recall20']:.3f}  "
                  f"recall>=40 {at['recall40']:.3f}  false/photo {at['false_per_photo']:.2f}  "
                  f"{ms:6.1f} ms/photo ({cpu_ms:.0f} CPU ms)", flush=True)  # fmt: skip
            for c in curve:
                print(f"    thr {c['threshold']:.3f}: recall>=20 {c['recall20']:.3f}  "
                      f"recall>=40 {c['recall40']:.3f}  "
                      f"false/photo {c['false_per_photo']:.2f}")  # fmt: skip
    faces = score_detections({}, truth)["faces"]
    if not args.json:
        print(f"\n{'setting':52s}   thr  r>=20  r>=40  false/photo  ms/photo  CPU ms")
        for r in rows:
            print(f"{r['setting']:52s} {r['threshold']:.2f}  {r['recall20']:.3f}  "
                  f"{r['recall40']:.3f}  {r['false_per_photo']:11.3f}  {r['ms_per_photo']:8.0f}  "
                  f"{r['cpu_ms_per_photo']:6.0f}")  # fmt: skip
    if args.json:
        print(json.dumps({"photos": len(truth), "faces": faces, "settings": rows}, indent=1))
    else:
        print(f"{len(truth)} photos; valid faces >= 20 px: {faces[20]}, >= 40 px: {faces[40]}; "
              f"onnxruntime threads: 2; cpus: {os.cpu_count()}; "
              f"load average: {os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
