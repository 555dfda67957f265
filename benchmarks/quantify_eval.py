"""Accuracy and interval coverage of the quantification methods on simulated sessions.

Val is split, stratified by state, into a calibration half (measures the confusion matrix) and
a disjoint test half. Each simulated session draws 10-60 test faces whose state mix is drawn
uniformly from the simplex (seeded), so every session's true shares are known. Reports the
mean absolute error of each method's shares, how often the 90 % intervals hold the true share,
how wide they are by session size, and how often `change` flags consecutive sessions.

python benchmarks/quantify_eval.py [--weights default|CKPT] [--sessions 500] [--json]
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

from ml import quantify as q  # noqa: E402
from ml.data import load_images  # noqa: E402
from ml.labels import ENGAGED, states_of  # noqa: E402
from ml.predict import Classifier  # noqa: E402

DATA = Path(os.environ.get("EDUMOOD_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
SIZE_BINS = ((10, 19), (20, 29), (30, 39), (40, 49), (50, 60))


def faces_of(classifier: Classifier, val: Path):
    """State names, then true states, state posteriors and predicted states of every val face."""
    truth, posteriors, predicted = q.score_faces(
        classifier, load_images(val, size=classifier.input_size)
    )
    states = states_of(classifier.state_mapping)
    return states, np.asarray(truth), posteriors, np.asarray(predicted)


def split_halves(truth: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a calibration half and a test half, each state split evenly."""
    calibration, test = [], []
    for state in np.unique(truth):
        index = rng.permutation(np.flatnonzero(truth == state))
        calibration.append(index[: len(index) // 2])
        test.append(index[len(index) // 2 :])
    return np.concatenate(calibration), np.concatenate(test)


def simulate_session(truth: np.ndarray, pool: np.ndarray, states, size: int, rng, mix=None):
    """Indices of one session's faces and its true shares; the mix is uniform on the simplex
    unless given."""
    if mix is None:
        mix = rng.dirichlet(np.ones(len(states)))
    counts = rng.multinomial(size, mix)
    faces = np.concatenate(
        [
            rng.choice(pool[truth[pool] == s], n, replace=False)
            for s, n in zip(states, counts, strict=True)
        ]
    )
    return faces, counts / size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="default", help="checkpoint path or 'default'")
    parser.add_argument("--val", default=str(DATA / "fer2013" / "val"))
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=q.RESAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sweep-sizes",
        default="10,20,30,40,50,60,80,100,120,150,200",
        help="session sizes at which to measure interval width (for MIN_FACES)",
    )
    parser.add_argument("--sweep-sessions", type=int, default=40, help="sessions per swept size")
    parser.add_argument("--sweep-method", default=q.DEFAULT_METHOD, choices=q.METHODS)
    parser.add_argument("--change-pairs", type=int, default=100, help="session pairs for change()")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    classifier = Classifier.load(args.weights)
    states, truth, posteriors, predicted = faces_of(classifier, Path(args.val))
    calibration_half, test_half = split_halves(truth, rng)
    calibration = q.calibration_from_faces(
        truth[calibration_half], posteriors[calibration_half], predicted[calibration_half], states
    )
    engaged = states.index(ENGAGED)

    errors = {m: [] for m in q.METHODS}  # (sessions, S) absolute errors
    covered = {m: [] for m in q.METHODS}  # (sessions, S) true share inside the interval
    widest = {m: [] for m in q.METHODS}  # largest half-width of a share interval
    seconds = {m: 0.0 for m in q.METHODS}
    sizes, truths = [], []
    for i in range(args.sessions):
        size = int(rng.integers(10, 61))
        faces, true_shares = simulate_session(truth, test_half, states, size, rng)
        sizes.append(len(faces))
        truths.append(true_shares)
        for method in q.METHODS:
            start = time.perf_counter()
            result = q.quantify(
                posteriors[faces],
                predicted[faces],
                calibration,
                method,
                resamples=args.resamples,
                seed=args.seed + i,
            )
            seconds[method] += time.perf_counter() - start
            low, high = result.intervals.T
            errors[method].append(np.abs(result.shares - true_shares))
            covered[method].append((low <= true_shares) & (true_shares <= high))
            widest[method].append(float(np.max(high - low) / 2))
    sizes, truths = np.asarray(sizes), np.asarray(truths)
    absent = truths < 0.05  # states (nearly) missing from a session: where EM's intervals fail

    report = {
        "weights": str(args.weights),
        "states": list(states),
        "calibration_faces": calibration.faces,
        "test_faces": len(test_half),
        "sessions": args.sessions,
        "resamples": args.resamples,
        "seed": args.seed,
        "calibration": calibration.to_json(),
        "methods": {},
    }
    for method in q.METHODS:
        err, cov, wide = np.asarray(errors[method]), np.asarray(covered[method]), widest[method]
        wide = np.asarray(wide)
        by_size = {}
        for lo, hi in SIZE_BINS:
            rows = (sizes >= lo) & (sizes <= hi)
            by_size[f"{lo}-{hi}"] = {
                "sessions": int(rows.sum()),
                "mae": float(err[rows].mean()),
                "coverage": float(cov[rows].mean()),
                "median_widest_half_width": float(np.median(wide[rows])),
                "share_within_20_points": float((wide[rows] <= 0.20).mean()),
            }
        report["methods"][method] = {
            "mae": float(err.mean()),
            "mae_by_state": dict(zip(states, err.mean(0).round(4).tolist(), strict=True)),
            "mae_engagement": float(err[:, engaged].mean()),
            "coverage": float(cov.mean()),
            "coverage_by_state": dict(zip(states, cov.mean(0).round(4).tolist(), strict=True)),
            "coverage_engagement": float(cov[:, engaged].mean()),
            "coverage_true_share_under_5_percent": float(cov[absent].mean()),
            "ms_per_session": 1000 * seconds[method] / args.sessions,
            "by_size": by_size,
        }
    report["sweep"] = size_sweep(args, truth, test_half, states, posteriors, predicted, calibration)
    report["change"] = change_check(
        args, truth, test_half, states, posteriors, predicted, calibration
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))


def size_sweep(args, truth, pool, states, posteriors, predicted, calibration) -> dict:
    """Interval widths of one method at fixed session sizes; the smallest size that concludes."""
    rng = np.random.default_rng(args.seed + 1)
    rows = {}
    for size in (int(v) for v in args.sweep_sizes.split(",")):
        widest, engagement, covered = [], [], []
        for i in range(args.sweep_sessions):
            faces, true_shares = simulate_session(truth, pool, states, size, rng)
            result = q.quantify(
                posteriors[faces],
                predicted[faces],
                calibration,
                args.sweep_method,
                resamples=args.resamples,
                seed=args.seed + i,
            )
            low, high = result.intervals.T
            widest.append(float(np.max(high - low) / 2))
            engagement.append(float(np.diff(result.engagement_interval)[0] / 2))
            covered.append((low <= true_shares) & (true_shares <= high))
        rows[size] = {
            "median_widest_half_width": float(np.median(widest)),
            "share_within_20_points": float((np.asarray(widest) <= 0.20).mean()),
            "median_engagement_half_width": float(np.median(engagement)),
            "coverage": float(np.mean(covered)),
        }
    concluding = [size for size, row in rows.items() if row["median_widest_half_width"] <= 0.20]
    return {
        "method": args.sweep_method,
        "sessions_per_size": args.sweep_sessions,
        "by_size": rows,
        "smallest_size_within_20_points": min(concluding) if concluding else None,
    }


def change_check(args, truth, pool, states, posteriors, predicted, calibration) -> dict:
    """How often `change` flags pairs of MIN_FACES-face sessions whose engagement truly moved.

    Each pair draws a random mix (Engaged at most 70 %); the second session moves `shift` of
    the other states' share to Engaged (shift 0: the same mix, new faces: no real change).
    """
    rng = np.random.default_rng(args.seed + 2)
    engaged = states.index(ENGAGED)
    shifts = (0.0, 0.1, 0.2, 0.3)
    flagged = dict.fromkeys(shifts, 0)

    def session(mix, seed):
        faces, _ = simulate_session(truth, pool, states, q.MIN_FACES, rng, mix)
        return q.quantify(posteriors[faces], predicted[faces], calibration, seed=seed)

    for i in range(args.change_pairs):
        mix = rng.dirichlet(np.ones(len(states)))
        while mix[engaged] > 0.7:
            mix = rng.dirichlet(np.ones(len(states)))
        before = session(mix, 2 * i)
        for shift in shifts:
            moved = mix * (1 - shift / (1 - mix[engaged]))
            moved[engaged] = mix[engaged] + shift
            flagged[shift] += q.change(before, session(moved, 2 * i + 1)) is not None
    return {
        "faces": q.MIN_FACES,
        "pairs": args.change_pairs,
        "method": q.DEFAULT_METHOD,
        "flagged_by_true_move": {f"{s:.1f}": n / args.change_pairs for s, n in flagged.items()},
    }


def format_report(report: dict) -> str:
    lines = [
        f"weights={report['weights']}  sessions={report['sessions']} (10-60 faces)  "
        f"calibration faces={report['calibration_faces']}  test faces={report['test_faces']}  "
        f"resamples={report['resamples']}  seed={report['seed']}",
        "",
        f"{'method':>6} {'MAE':>6} {'MAE eng':>8} {'cover':>6} {'cover eng':>9} "
        f"{'cover<5%':>8} {'ms/session':>10}  coverage by state",
    ]
    for method, m in report["methods"].items():
        by_state = " ".join(f"{s[:3]} {v:.2f}" for s, v in m["coverage_by_state"].items())
        lines.append(
            f"{method:>6} {m['mae']:6.3f} {m['mae_engagement']:8.3f} {m['coverage']:6.3f} "
            f"{m['coverage_engagement']:9.3f} {m['coverage_true_share_under_5_percent']:8.3f} "
            f"{m['ms_per_session']:10.1f}  {by_state}"
        )
    lines += [
        "",
        "MAE by state: "
        + "; ".join(
            f"{method} " + " ".join(f"{s[:3]} {v:.3f}" for s, v in m["mae_by_state"].items())
            for method, m in report["methods"].items()
        ),
    ]
    lines += [
        "",
        "by session size: MAE / coverage / median widest half-width / share of sessions whose "
        "intervals all lie within +-20 points",
        f"{'method':>6} " + " ".join(f"{b:>24}" for b in report["methods"]["cc"]["by_size"]),
    ]
    for method, m in report["methods"].items():
        cells = [
            f"{v['mae']:.3f}/{v['coverage']:.2f}/{v['median_widest_half_width']:.3f}/"
            f"{v['share_within_20_points']:.2f}"
            for v in m["by_size"].values()
        ]
        lines.append(f"{method:>6} " + " ".join(f"{c:>24}" for c in cells))
    sweep = report["sweep"]
    lines += [
        "",
        f"size sweep ({sweep['method']}, {sweep['sessions_per_size']} sessions per size): "
        "median widest half-width / share within +-20 points / median engagement "
        "half-width / coverage",
    ]
    for size, row in sweep["by_size"].items():
        lines.append(
            f"{size:>6} {row['median_widest_half_width']:.3f} "
            f"{row['share_within_20_points']:.2f} {row['median_engagement_half_width']:.3f} "
            f"{row['coverage']:.3f}"
        )
    lines.append(
        f"smallest size whose median widest half-width is <= 20 points: "
        f"{sweep['smallest_size_within_20_points']}  (MIN_FACES in ml/quantify.py: {q.MIN_FACES})"
    )
    change = report["change"]
    lines += [
        "",
        f"change() on {change['pairs']} pairs of {change['faces']}-face sessions "
        f"({change['method']}): share flagged by true move of the engagement index",
        "  ".join(f"{move}: {rate:.2f}" for move, rate in change["flagged_by_true_move"].items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
