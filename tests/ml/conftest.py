"""Small generated datasets for the ml tests (no shared data needed)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.data import ImageSet

# The tests' models are tiny and the CI machine is shared: a second OpenMP thread mostly waits.
torch.set_num_threads(1)


def pattern_images(n_classes: int, n_per_class: int, size: int = 48, seed: int = 0):
    """uint8 (N, size, size) images and int labels; class k is a grating of 1.5 (k + 1) cycles.

    The classes differ in structure, not in brightness, so they stay separable after any
    brightness normalisation; orientation is random, so flips and rotations (training
    augmentation) keep the class; noise, phase and contrast vary so a model must learn.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, labels = [], []
    for k in range(n_classes):
        for _ in range(n_per_class):
            angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            cycles = 1.5 * (k + 1)
            wave = np.sin(2 * np.pi * cycles * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
            image = 128 + rng.uniform(40, 90) * wave + rng.normal(0, 20, (size, size))
            images.append(np.clip(image, 0, 255).astype(np.uint8))
            labels.append(k)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def make_image_set(classes=("a", "b", "c"), n_per_class: int = 16, size: int = 48, seed: int = 0):
    """An in-memory ImageSet of pattern_images, without touching the disk."""
    images, labels = pattern_images(len(classes), n_per_class, size, seed)
    files = [f"{classes[y]}/{i}.png" for i, y in enumerate(labels)]
    return ImageSet(images, labels, list(classes), files)


@pytest.fixture
def make_image_folder(tmp_path):
    """Factory: write pattern images as root/<class>/<i>.<ext> and return the root folder."""

    def make(
        classes=("a", "b", "c"),
        n_per_class: int = 8,
        size: int = 48,
        root: Path | None = None,
        ext: str = "png",
        seed: int = 0,
    ) -> Path:
        root = Path(root or tmp_path / "images")
        images, labels = pattern_images(len(classes), n_per_class, size, seed)
        for i, (image, y) in enumerate(zip(images, labels, strict=True)):
            folder = root / classes[y]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}.{ext}")
        return root

    return make
