"""Architecture registry: the seed's main model, its two variants, and the project's default."""

from collections.abc import Callable

import torch
from torch import nn

from ml.errors import MLError
from ml.recipe import ARCHITECTURE_NAMES


def _seed_block(cin: int, cout: int, kernel: int) -> nn.Sequential:
    # "Same" padding, asymmetric for the seed's even 4x4 kernels (Conv2d's padding="same" would
    # copy the input into a padded buffer on every call for those).
    before = (kernel - 1) // 2
    return nn.Sequential(
        nn.ZeroPad2d((before, kernel - 1 - before, before, kernel - 1 - before)),
        nn.Conv2d(cin, cout, kernel, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.1, inplace=True),
        nn.MaxPool2d(2),
    )


class SeedCNN(nn.Module):
    """The seed's CNN: conv + batch norm + leaky ReLU + 2x2 max pool blocks, two FC layers."""

    def __init__(
        self,
        num_classes: int,
        input_size: int = 48,
        kernel: int = 4,
        widths: tuple[int, ...] = (64, 128, 256),
        hidden: int = 512,
        dropout: float = 0.5,
    ):
        super().__init__()
        blocks, cin = [], 1
        for width in widths:
            blocks.append(_seed_block(cin, width, kernel))
            cin = width
        self.features = nn.Sequential(*blocks)
        side = input_size // 2 ** len(widths)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(cin * side * side, hidden),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]


class EduVGG(nn.Module):
    """The project's default: VGG-style stages of 3x3 conv + BN + ReLU, global pooling.

    3x3 convolutions map onto oneDNN's fast paths (and AMX in bf16) much better than 4x4 ones,
    and global average pooling replaces the seed's large first FC layer, so the weights stay
    small while the receptive field covers the whole 48x48 face.
    """

    def __init__(
        self,
        num_classes: int,
        input_size: int = 48,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        convs_per_stage: int = 2,
        dropout: float = 0.4,
    ):
        super().__init__()
        layers, cin = [], 1
        for width in widths:
            for _ in range(convs_per_stage):
                layers += _conv_bn_relu(cin, width)
                cin = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(cin, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "seed-main": lambda num_classes, input_size=48: SeedCNN(num_classes, input_size, kernel=4),
    "seed-variant1": lambda num_classes, input_size=48: SeedCNN(num_classes, input_size, kernel=3),
    "seed-variant2": lambda num_classes, input_size=48: SeedCNN(
        num_classes, input_size, kernel=4, widths=(64, 128, 256, 512)
    ),
    "edu-vgg-s": lambda num_classes, input_size=48: EduVGG(
        num_classes, input_size, widths=(32, 64, 128, 256)
    ),
    "edu-vgg": lambda num_classes, input_size=48: EduVGG(num_classes, input_size),
}
# Keyed by ml.recipe's names (the torch-free list the web forms offer): a name without a
# builder fails here, at import.
ARCHITECTURES = {name: _BUILDERS[name] for name in ARCHITECTURE_NAMES}


def build_model(name: str, num_classes: int, input_size: int = 48) -> nn.Module:
    """A freshly initialised model of a registered architecture."""
    if name not in ARCHITECTURES:
        raise MLError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    if num_classes < 2:
        raise MLError("a classifier needs at least two classes")
    if input_size < 16 or input_size % 16:
        raise MLError(f"input size must be a multiple of 16 and at least 16, got {input_size}")
    return ARCHITECTURES[name](num_classes=num_classes, input_size=input_size)
