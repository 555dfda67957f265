"""Inference throughput: faces/s batched (one forward per call) vs one face at a time.

python benchmarks/infer_throughput.py [--weights default|CKPT[,CKPT...]] [--archs a,b]
                                      [--baseline] [--mirror] [--rounds N] [--small] [--json]

Each checkpoint is timed as served (Classifier.load: int8 where it carries activation ranges,
an ensemble averaged as one model). --baseline adds a fresh v3-sized model (one edu-vgg-s, no
int8, no mirror averaging) to the same run and gives every row's ratio to it; the rounds
alternate between the models so shared, noisy cores slow all of them alike, and each figure is
the median of its rounds.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.checkpoint import load_checkpoint, new_checkpoint  # noqa: E402
from ml.models import ARCHITECTURES, build_model  # noqa: E402
from ml.predict import Classifier, resolve_weights  # noqa: E402
from ml.recipe import TrainConfig  # noqa: E402

BASELINE = "v3-sized"


def rate(classifier: Classifier, faces: np.ndarray, batch: int) -> float:
    classifier.predict_proba(faces[:batch])  # warm-up: oneDNN builds kernels per shape
    start = time.perf_counter()
    for i in range(0, len(faces), batch):
        classifier.predict_proba(faces[i : i + batch])
    return len(faces) / (time.perf_counter() - start)


def fresh(arch: str) -> Classifier:
    model = build_model(arch, 7)
    return Classifier(new_checkpoint(model, [str(i) for i in range(7)], TrainConfig(arch=arch)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="checkpoints or 'default', comma-separated")
    parser.add_argument("--archs", default=",".join(ARCHITECTURES))
    parser.add_argument("--baseline", action="store_true", help="add a fresh v3-sized model")
    parser.add_argument("--mirror", action="store_true", help="serve with mirror averaging")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--faces", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--small", action="store_true", help="1,024 faces, 64 one at a time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = 1024 if args.small else args.faces
    singles = 64 if args.small else 256
    faces = np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)
    classifiers = {}
    if args.weights:
        for weights in args.weights.split(","):
            checkpoint = load_checkpoint(resolve_weights(weights))
            classifiers[weights] = Classifier(checkpoint, mirror_average=args.mirror)
    else:
        classifiers = {arch: fresh(arch) for arch in args.archs.split(",")}
    if args.baseline:
        classifiers[BASELINE] = fresh("edu-vgg-s")
    runs = {name: {"batched": [], "single": []} for name in classifiers}
    for _ in range(args.rounds):
        for name, classifier in classifiers.items():
            runs[name]["batched"].append(rate(classifier, faces, args.batch_size))
            runs[name]["single"].append(rate(classifier, faces[:singles], 1))
    rows = []
    for name, classifier in classifiers.items():
        batched = statistics.median(runs[name]["batched"])
        single = statistics.median(runs[name]["single"])
        row = {
            "model": name,
            "arch": classifier.arch,
            "models": len(classifier.models),
            "int8": classifier.int8,
            "mirror": classifier.mirror_average,
            "batched_faces_s": batched,
            "single_faces_s": single,
            "speedup": batched / single,
        }
        if args.baseline:
            row["vs_baseline"] = batched / statistics.median(runs[BASELINE]["batched"])
        rows.append(row)
    meta = {
        "threads": args.threads,
        "batch_size": args.batch_size,
        "faces": n,
        "rounds": args.rounds,
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}))
        return
    print(
        f"threads={args.threads} batch={args.batch_size} faces={n} rounds={args.rounds} "
        f"load={meta['load_average'][0]:.1f}"
    )
    print(
        f"{'model':16} {'nets':>4} {'int8':>4} {'mirror':>6} {'batched faces/s':>15} "
        f"{'one-at-a-time':>13} {'speedup':>7}"
        + (f" {'vs ' + BASELINE:>12}" if args.baseline else "")
    )
    for r in rows:
        print(
            f"{r['model'][-16:]:16} {r['models']:4} {r['int8']!s:>4} {r['mirror']!s:>6} "
            f"{r['batched_faces_s']:15.0f} {r['single_faces_s']:13.0f} {r['speedup']:7.1f}"
            + (f" {r['vs_baseline']:12.2f}" if args.baseline else "")
        )


if __name__ == "__main__":
    main()
