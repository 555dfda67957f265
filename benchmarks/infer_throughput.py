"""Inference throughput: faces/s batched (one forward per call) vs one face at a time.

python benchmarks/infer_throughput.py [--weights default|CKPT] [--archs a,b] [--small] [--json]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.checkpoint import new_checkpoint  # noqa: E402
from ml.models import ARCHITECTURES, build_model  # noqa: E402
from ml.predict import Classifier  # noqa: E402
from ml.recipe import TrainConfig  # noqa: E402


def rate(classifier: Classifier, faces: np.ndarray, batch: int) -> float:
    classifier.predict_proba(faces[:batch])  # warm-up: oneDNN builds kernels per shape
    start = time.perf_counter()
    for i in range(0, len(faces), batch):
        classifier.predict_proba(faces[i : i + batch])
    return len(faces) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="checkpoint or 'default' (else fresh models of --archs)")
    parser.add_argument("--archs", default=",".join(ARCHITECTURES))
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
    if args.weights:
        classifiers = {args.weights: Classifier.load(args.weights)}
    else:
        classifiers = {}
        for arch in args.archs.split(","):
            model = build_model(arch, 7)
            checkpoint = new_checkpoint(model, [str(i) for i in range(7)], TrainConfig(arch=arch))
            classifiers[arch] = Classifier(checkpoint)
    rows = []
    for name, classifier in classifiers.items():
        batched = rate(classifier, faces, args.batch_size)
        single = rate(classifier, faces[:singles], 1)
        rows.append(
            {
                "model": name,
                "arch": classifier.arch,
                "batched_faces_s": batched,
                "single_faces_s": single,
                "speedup": batched / single,
            }
        )
    meta = {
        "threads": args.threads,
        "batch_size": args.batch_size,
        "faces": n,
        "amp": str(next(iter(classifiers.values())).amp_dtype),
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}))
        return
    print(
        f"threads={args.threads} batch={args.batch_size} faces={n} amp={meta['amp']} "
        f"load={meta['load_average'][0]:.1f}"
    )
    print(f"{'model':16} {'batched faces/s':>15} {'one-at-a-time':>13} {'speedup':>7}")
    for r in rows:
        print(
            f"{r['model']:16} {r['batched_faces_s']:15.0f} {r['single_faces_s']:13.0f} "
            f"{r['speedup']:7.1f}"
        )


if __name__ == "__main__":
    main()
