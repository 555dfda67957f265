"""Face detection on annotated group photos: recall, false boxes and time per setting.

    nice -n 10 .venv/bin/python benchmarks/detect_eval.py [--data ../shared/data] [--json]

For each detector setting: recall of valid faces with a shorter side >= 20, >= 40 and >= 80 px
(IoU >= 0.5), false boxes per photo, and milliseconds per photo for `detect()` on an already
decoded image, with onnxruntime on 2 threads; all settings run in one process, so their times
compare. Each setting also prints its score-threshold curve (one run at a low threshold,
filtered afterwards), on the whole set and on its two halves (photos in name order, every
second one: each event is in both), and the threshold choice made on one half, scored on the
other: the lowest threshold of the curve with at most 0.10 false boxes per photo on that half.
The modes' thresholds are the mean of the two halves' choices.

`--sizes 640,1600` also runs the photos resized to those long sides (the annotations with
them); faces are counted by their size in the resized photo.
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
    "RetinaFace 1152, score 0.8 (fast before issue 21)": dict(),
    "+ CenterFace, mean score (= fast)": MODES["fast"],
    "RetinaFace flip + fine pass 2x, 0.85 (thorough before)": dict(
        flip=True, upscale=2.0, score_threshold=0.85
    ),
    "+ CenterFace, mean score (= thorough)": MODES["thorough"],
}
CURVE = tuple(round(0.4 + 0.025 * i, 3) for i in range(21))  # 0.4 to 0.9
SIZES = (20, 40, 80)
MAX_FALSE = 0.10


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


def halves(names: list[str]) -> tuple[list[str], list[str]]:
    ordered = sorted(names)
    return ordered[0::2], ordered[1::2]


def scored(found: dict, truth: dict, names: list[str], threshold: float) -> dict:
    kept = {n: [b for b in found[n] if b.score >= threshold] for n in names}
    score = score_detections(kept, {n: truth[n] for n in names}, min_sizes=SIZES)
    return dict(threshold=threshold, **{f"recall{s}": score["recall"][s] for s in SIZES},
                false_per_photo=score["false_per_photo"])  # fmt: skip


def line(c: dict) -> str:
    return (" ".join(f">={s} {c[f'recall{s}']:.3f}" for s in SIZES)
            + f"  false/photo {c['false_per_photo']:.3f}")  # fmt: skip


def resized(images: dict, truth: dict, side: int) -> tuple[dict, dict]:
    """The photos and their annotations with the photos' long side `side`."""
    out_images, out_truth = {}, {}
    for name, image in images.items():
        factor = side / max(image.size)
        size = (round(image.width * factor), round(image.height * factor))
        out_images[name] = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
        faces = truth[name].copy()
        faces[:, :4] = (faces[:, :4] * factor).round()
        out_truth[name] = faces
    return out_images, out_truth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("EDUMOOD_DATA_DIR", "../shared/data")  # relative to the repo root
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--only", help="run only settings whose name contains this text")
    parser.add_argument("--sizes", default="", help="also run at these long sides, e.g. 640,1600")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    folder = args.data / "group-photos"
    truth = load_annotations(folder)
    images = {name: Image.open(folder / "images" / name).convert("RGB") for name in truth}
    tune, check = halves(list(truth))
    rows = []
    for name, options in SETTINGS.items():
        if args.only and args.only not in name:
            continue
        found, ms, cpu_ms = run_setting(images, options)
        threshold = options.get("score_threshold", RetinaFaceDetector().score_threshold)
        curve = []
        for t in sorted({*CURVE, threshold}):
            split = [scored(found, truth, h, t) for h in (tune, check)]
            curve.append(dict(whole=scored(found, truth, list(truth), t), halves=split))
        crossed = []
        for i in (0, 1):
            chosen = next((c for c in curve if c["halves"][i]["false_per_photo"] <= MAX_FALSE),
                          curve[-1])  # fmt: skip
            crossed.append(dict(chosen_on=i, threshold=chosen["halves"][i]["threshold"],
                                other=chosen["halves"][1 - i]))  # fmt: skip
        at = next(c for c in curve if c["whole"]["threshold"] == threshold)
        row = dict(setting=name, options=options, ms_per_photo=ms, cpu_ms_per_photo=cpu_ms,
                   **at["whole"], halves=at["halves"], crossed=crossed, curve=curve)  # fmt: skip
        for side in filter(None, args.sizes.split(",")):
            images_at, truth_at = resized(images, truth, int(side))
            found_at, ms_at, cpu_at = run_setting(images_at, options)
            row[f"at {side} px"] = dict(**scored(found_at, truth_at, list(truth), threshold),
                                        ms_per_photo=ms_at, cpu_ms_per_photo=cpu_at)  # fmt: skip
        rows.append(row)
        if args.json:
            continue
        print(f"{name}: thr {threshold:.2f}  {line(row)}  {ms:.0f} ms/photo ({cpu_ms:.0f} CPU ms)")
        for label, half in zip(("even", "odd"), at["halves"], strict=True):
            print(f"    {label} half: {line(half)}")
        for c in crossed:
            print(f"    threshold chosen on the {('even', 'odd')[c['chosen_on']]} half "
                  f"{c['threshold']:.2f}, on the other: {line(c['other'])}")  # fmt: skip
        for side in filter(None, args.sizes.split(",")):
            r = row[f"at {side} px"]
            print(f"    photos at {side} px: {line(r)}  {r['ms_per_photo']:.0f} ms/photo "
                  f"({r['cpu_ms_per_photo']:.0f} CPU ms)")  # fmt: skip
        for c in curve:
            w, (e, o) = c["whole"], c["halves"]
            print(f"    thr {w['threshold']:.2f}: {line(w)}   (even {e['false_per_photo']:.3f}, "
                  f"odd {o['false_per_photo']:.3f} false/photo)")  # fmt: skip
        print(flush=True)
    faces = score_detections({}, truth, min_sizes=SIZES)["faces"]
    if args.json:
        print(json.dumps({"photos": len(truth), "faces": faces, "settings": rows}, indent=1))
        return 0
    print(f"{'setting':56s}  thr  r>=20  r>=40  r>=80  false/photo  ms/photo  CPU ms")
    for r in rows:
        print(f"{r['setting']:56s} {r['threshold']:.2f}  {r['recall20']:.3f}  {r['recall40']:.3f}"
              f"  {r['recall80']:.3f}  {r['false_per_photo']:11.3f}  {r['ms_per_photo']:8.0f}  "
              f"{r['cpu_ms_per_photo']:6.0f}")  # fmt: skip
    print(f"{len(truth)} photos; valid faces >= 20/40/80 px: {faces[20]}/{faces[40]}/{faces[80]};"
          f" onnxruntime threads: 2; cpus: {os.cpu_count()}; "
          f"load average: {os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
