"""Face detection on annotated group photos: recall, false boxes and time per setting.

    nice -n 10 .venv/bin/python benchmarks/detect_eval.py [--data ../shared/data] [--json]

For each detector setting: recall of valid faces with a shorter side >= 20, >= 40 and >= 80 px
(IoU >= 0.5), false boxes per photo, and milliseconds per photo for `detect()` on an already
decoded image (wall and CPU time of the process), with onnxruntime on 2 threads; all settings
run in one process, so their times compare. Each setting also prints its score-threshold curve
(one run at a low threshold, filtered afterwards), on the whole set and on its two halves
(photos in name order, every second one, "even" from the first: each event is in both).

Thresholds are tuned on the even half only: the lowest threshold of the curve with at most
0.10 false boxes per photo there. The modes' thresholds (ml.detect.MODES) were chosen so; the
odd half is what they were not tuned on, and the whole set is given beside it.

Boxes that match no annotation were looked at for the modes' settings
(benchmarks/group_photos_review.csv, judged by eye): each false box is then counted by what it
shows (a face or head the annotation left out, a face boxed differently, or no face), and each
missed face >= 40 px by why (no face visible: the back of a head; hidden; ...). Those lines
are a reading of the misses, not a second score: the goals are measured on the annotation.

`--sizes 640,1600` also runs the photos resized to those long sides (the annotations with
them); faces are counted by their size in the resized photo.
"""

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.detect import (  # noqa: E402
    MODES,
    RetinaFaceDetector,
    iou_matrix,
    load_annotations,
    score_detections,
)

# name -> (RetinaFaceDetector options, the most false boxes per photo its threshold may give on
# the even half); the modes are those of get_detector(mode=...).
SETTINGS = {
    "RetinaFace 1152, score 0.8 (fast before issue 21)": (dict(score_threshold=0.8), 0.10),
    "+ CenterFace, mean score 0.55 (fast before)": (
        dict(centerface=True, score_threshold=0.55),
        0.10,
    ),
    "+ a second look at 2x where faces are doubtful (= fast)": (MODES["fast"], 0.10),
    "+ flip TTA, no cap on the second look (= thorough)": (MODES["thorough"], 0.20),
}
CURVE = tuple(round(0.4 + 0.025 * i, 3) for i in range(21))  # 0.4 to 0.9
SIZES = (20, 40, 80)
REVIEW = Path(__file__).resolve().parent / "group_photos_review.csv"


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


def kept(found: dict, names: list[str], threshold: float) -> dict:
    return {n: [b for b in found[n] if b.score >= threshold] for n in names}


def scored(found: dict, truth: dict, names: list[str], threshold: float) -> dict:
    score = score_detections(kept(found, names, threshold), {n: truth[n] for n in names},
                             min_sizes=SIZES)  # fmt: skip
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


def errors(found: dict, truth: dict) -> tuple[list, list]:
    """(photo, x, y, w, h) of each false box and of each missed valid face >= 40 px, matched
    as score_detections matches."""
    false, missed = [], []
    for name, faces in truth.items():
        boxes = sorted(found[name], key=lambda b: -b.score)
        matched = np.zeros(len(faces), dtype=bool)
        if boxes:
            arr = np.array([[b.x, b.y, b.w, b.h] for b in boxes], dtype=np.float64)
            for box, overlaps in zip(boxes, iou_matrix(arr, faces[:, :4].astype(np.float64)),
                                     strict=True):  # fmt: skip
                overlaps[matched] = -1
                j = int(overlaps.argmax())
                if overlaps[j] >= 0.5:
                    matched[j] = True
                else:
                    false.append((name, box.x, box.y, box.w, box.h))
        side = np.minimum(faces[:, 2], faces[:, 3])
        for x, y, w, h, _ in faces[~matched & (faces[:, 4] == 0) & (side >= 40)]:
            missed.append((name, int(x), int(y), int(w), int(h)))
    return false, missed


def reviewed(found: dict, truth: dict) -> dict:
    """The false boxes and the missed faces >= 40 px counted by the kind the review gives them
    ("not reviewed" where it has none): a false box takes the kind of a reviewed box it
    overlaps by IoU >= 0.5, a missed face that of its own annotation."""
    rows = list(csv.DictReader(REVIEW.open(newline=""))) if REVIEW.is_file() else []
    false, missed = errors(found, truth)
    kinds = {"false": Counter(), "missed >= 40 px": Counter()}
    for what, items in (("false", false), ("missed >= 40 px", missed)):
        for name, *box in items:
            same = [r for r in rows if r["filename"] == name and r["of"] == what]
            if same:
                others = np.array([[int(r[k]) for k in "xywh"] for r in same], dtype=np.float64)
                overlaps = iou_matrix(np.array([box], dtype=np.float64), others)[0]
                if overlaps.max() >= (0.5 if what == "false" else 0.999):
                    kinds[what][same[int(overlaps.argmax())]["kind"]] += 1
                    continue
            kinds[what]["not reviewed"] += 1
    return {what: dict(counts.most_common()) for what, counts in kinds.items()}


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
    even, odd = halves(list(truth))
    rows = []
    for name, (options, max_false) in SETTINGS.items():
        if args.only and args.only not in name:
            continue
        found, ms, cpu_ms = run_setting(images, options)
        curve = [dict(whole=scored(found, truth, list(truth), t),
                      halves=[scored(found, truth, h, t) for h in (even, odd)])
                 for t in CURVE]  # fmt: skip
        tuned = next((c for c in curve if c["halves"][0]["false_per_photo"] <= max_false),
                     curve[-1])["whole"]["threshold"]  # fmt: skip
        threshold = options["score_threshold"]
        at = dict(whole=scored(found, truth, list(truth), threshold),
                  halves=[scored(found, truth, h, threshold) for h in (even, odd)])  # fmt: skip
        row = dict(setting=name, options=options, tuned_on_even=tuned, ms_per_photo=ms,
                   cpu_ms_per_photo=cpu_ms, **at["whole"], halves=at["halves"], curve=curve,
                   review=reviewed(kept(found, list(truth), threshold), truth))  # fmt: skip
        for side in filter(None, args.sizes.split(",")):
            images_at, truth_at = resized(images, truth, int(side))
            found_at, ms_at, cpu_at = run_setting(images_at, options)
            row[f"at {side} px"] = dict(**scored(found_at, truth_at, list(truth), threshold),
                                        halves=[scored(found_at, truth_at, h, threshold)
                                                for h in (even, odd)],
                                        ms_per_photo=ms_at, cpu_ms_per_photo=cpu_at)  # fmt: skip
        rows.append(row)
        if args.json:
            continue
        print(f"{name}: thr {threshold:.3f} (tuned on the even half for <= {max_false:.2f} false "
              f"boxes per photo: {tuned:.3f})  {line(row)}  "
              f"{ms:.0f} ms/photo ({cpu_ms:.0f} CPU ms)")  # fmt: skip
        for label, half in zip(("even (tuned on)", "odd (held out)"), at["halves"], strict=True):
            print(f"    {label}: {line(half)}")
        for what, counts in row["review"].items():
            print(f"    {what}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
        for side in filter(None, args.sizes.split(",")):
            r = row[f"at {side} px"]
            print(
                f"    photos at {side} px: {line(r)}  (odd half: {line(r['halves'][1])})  "
                f"{r['ms_per_photo']:.0f} ms/photo"
            )
            print(f"        ({r['cpu_ms_per_photo']:.0f} CPU ms/photo)")
        for c in curve:
            w, (e, o) = c["whole"], c["halves"]
            print(f"    thr {w['threshold']:.3f}: {line(w)}   (even {e['recall20']:.3f} "
                  f"{e['false_per_photo']:.3f}, odd {o['recall20']:.3f} "
                  f"{o['false_per_photo']:.3f} false/photo)")  # fmt: skip
        print(flush=True)
    faces = score_detections({}, truth, min_sizes=SIZES)["faces"]
    if args.json:
        print(json.dumps({"photos": len(truth), "faces": faces, "settings": rows}, indent=1))
        return 0
    print(f"{'setting':56s}   thr  half   r>=20  r>=40  r>=80  false/photo  ms/photo  CPU ms")
    for r in rows:
        for label, c in (("all", r), ("odd", r["halves"][1])):
            print(f"{r['setting']:56s} {r['threshold']:.3f}  {label:4s}  {c['recall20']:.3f}  "
                  f"{c['recall40']:.3f}  {c['recall80']:.3f}  {c['false_per_photo']:11.3f}  "
                  f"{r['ms_per_photo']:8.0f}  {r['cpu_ms_per_photo']:6.0f}")  # fmt: skip
    odd_faces = score_detections({}, {n: truth[n] for n in odd}, min_sizes=SIZES)["faces"]
    print(f"{len(truth)} photos ({len(odd)} in the odd half); valid faces >= 20/40/80 px: "
          f"{faces[20]}/{faces[40]}/{faces[80]} (odd half {odd_faces[20]}/{odd_faces[40]}/"
          f"{odd_faces[80]}); onnxruntime threads: 2; cpus: {os.cpu_count()}; "
          f"load average: {os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
