"""Training throughput per architecture: our in-memory pipeline vs torchvision ImageFolder.

Prints images/s of training epochs on FER2013-sized data (48x48 grayscale), the FLOPs of one
training step counted by torch.utils.flop_counter, the achieved GFLOP/s and its share of this
CPU's 2-core AVX2-FMA float32 peak (cores x GHz x 2 FMA units x 8 lanes x 2). With bf16 on an
AMX CPU the achieved rate can exceed that AVX2 figure: AMX tiles are a separate, faster unit.

    python benchmarks/train_throughput.py [--small] [--archs a,b] [--data DIR] [--json]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.device import autocast, autocast_dtype, prepare_model  # noqa: E402
from ml.models import ARCHITECTURES, build_model  # noqa: E402
from ml.recipe import DEFAULT_ARCH, TrainConfig  # noqa: E402
from ml.train import DeviceSet, EpochContext, steps_per_epoch, train_one_epoch  # noqa: E402


def cpu_ghz() -> float:
    """The nominal clock of the first CPU in /proc/cpuinfo, in GHz."""
    with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
        for line in handle:
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000
    return float("nan")


def avx2_peak_gflops(cores: int) -> float:
    # 2 FMA ports x 8 float32 lanes (256-bit) x 2 flops per FMA, per cycle and core.
    return cores * cpu_ghz() * 2 * 8 * 2


def flops_per_image(arch: str, batch: int = 16) -> float:
    model = build_model(arch, 7)
    x, y = torch.randn(batch, 1, 48, 48), torch.randint(0, 7, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


def in_memory(arch: str, n: int, batch: int, device: torch.device) -> float:
    """Images/s of our pipeline: uint8 tensor on the device, batch augmentation, bf16/AMX."""
    images = torch.randint(0, 256, (n, 48, 48), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 7, (n,), device=device)
    model = prepare_model(build_model(arch, 7), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dtype = autocast_dtype(device)
    generator = torch.Generator(device=device).manual_seed(0)
    times = []

    def on_batch(step, steps, loss, acc):
        times.append(time.perf_counter())
        return False

    config = TrainConfig(
        arch=arch, batch_size=batch, normalisation="standardize", augment=True, label_smoothing=0.1
    )
    ctx = EpochContext(
        model, optimizer, None, DeviceSet(images, labels), config, dtype, steps_per_epoch(n, batch)
    )
    train_one_epoch(ctx, torch.randperm(n, device=device), generator, on_batch)
    warm = min(3, len(times) - 2)  # oneDNN builds its kernels during the first batches
    return batch * (len(times) - 1 - warm) / (times[-1] - times[warm])


def write_folder(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    from PIL import Image

    for i in range(n):
        folder = root / f"c{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def imagefolder(arch: str, root: Path, n: int, batch: int, device, workers: int) -> float:
    """Images/s of a plain torchvision ImageFolder + DataLoader pipeline with PIL transforms."""
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.Grayscale(),
            transforms.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.5], [0.5]),
        ]
    )
    dataset = datasets.ImageFolder(root, transform=tf)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True
    )
    model = prepare_model(build_model(arch, 7), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dtype = autocast_dtype(device)
    model.train()
    times, seen = [], 0
    for x, y in loader:
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            loss = F.cross_entropy(model(x).float(), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter())
        seen += len(y)
        if seen >= n:
            break
    warm = min(3, len(times) - 2)
    return batch * (len(times) - 1 - warm) / (times[-1] - times[warm])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=",".join(ARCHITECTURES))
    parser.add_argument("--images", type=int, default=28709, help="images per measured epoch")
    parser.add_argument(
        "--small", action="store_true", help="1,024 images; ImageFolder only for the default"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    parser.add_argument("--data", help="ImageFolder root to read (default: generated PNGs)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = 1024 if args.small else args.images
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = avx2_peak_gflops(args.threads)
    meta = {
        "device": str(device),
        "threads": args.threads,
        "cpu_ghz": cpu_ghz(),
        "avx2_peak_gflops": peak,
        "amp": str(autocast_dtype(device)),
        "images": n,
        "load_average_before": os.getloadavg(),
    }
    if not args.json:
        print(
            f"device={meta['device']} threads={args.threads} clock={meta['cpu_ghz']:.2f} GHz "
            f"AVX2 peak={peak:.0f} GFLOP/s amp={meta['amp']} images={n} "
            f"load={meta['load_average_before'][0]:.1f}"
        )
        print(
            f"{'arch':14} {'MFLOP/img':>9} {'img/s':>7} {'GFLOP/s':>8} {'%peak':>6} "
            f"{'epoch s':>8} {'ImageFolder img/s':>17} {'speedup':>7}",
            flush=True,
        )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data) if args.data else write_folder(Path(tmp), n)
        for arch in args.archs.split(","):
            flops = flops_per_image(arch)
            ours = in_memory(arch, n, args.batch_size, device)
            r = {
                "arch": arch,
                "mflop_per_image": flops / 1e6,
                "in_memory_img_s": ours,
                "gflop_s": flops * ours / 1e9,
                "pct_avx2_peak": 100 * flops * ours / 1e9 / peak,
                "epoch_28709_s": 28709 / ours,
            }
            if not args.small or arch == DEFAULT_ARCH:
                folder = imagefolder(arch, root, n, args.batch_size, device, args.workers)
                r.update(imagefolder_img_s=folder, speedup=ours / folder)
            rows.append(r)
            if not args.json:
                side = (
                    f"{r['imagefolder_img_s']:17.0f} {r['speedup']:7.1f}" if "speedup" in r else ""
                )
                print(
                    f"{r['arch']:14} {r['mflop_per_image']:9.0f} {r['in_memory_img_s']:7.0f} "
                    f"{r['gflop_s']:8.1f} {r['pct_avx2_peak']:6.1f} {r['epoch_28709_s']:8.0f} "
                    f"{side}",
                    flush=True,
                )
    meta["load_average_after"] = os.getloadavg()
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}))
    else:
        print(f"load average after: {meta['load_average_after'][0]:.1f}")


if __name__ == "__main__":
    main()
