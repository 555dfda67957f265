"""Preprocessing shared by training and serving: grayscale, resize, brightness normalisation."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ml.errors import MLError
from ml.recipe import NORMALISATIONS


def to_grayscale_array(image: Image.Image, size: int) -> np.ndarray:
    """An 8-bit grayscale (size, size) array of a PIL image, squashed to a square if needed."""
    image = ImageOps.exif_transpose(image) if image.getexif() else image
    gray = image.convert("L")
    if gray.size != (size, size):
        gray = gray.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(gray, dtype=np.uint8)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Per-image histogram equalisation of values in [0, 1], vectorised over the batch."""
    n = x.shape[0]
    levels = (x.reshape(n, -1) * 255).round().long().clamp_(0, 255)
    hist = torch.zeros(n, 256, device=x.device).scatter_add_(
        1, levels, torch.ones_like(levels, dtype=torch.float32)
    )
    cdf = hist.cumsum(1)
    cdf_min = cdf.masked_fill(hist == 0, float("inf")).amin(1, keepdim=True)
    lut = ((cdf - cdf_min) / (cdf[:, -1:] - cdf_min).clamp_min(1)).clamp_(0, 1)
    return lut.gather(1, levels).reshape(x.shape)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (sigma in pixels) of a float (N, 1, S, S) batch, vectorised, edges reflected.

    Serving inputs pass through this when a model was trained on images blurrier than the photos
    it will see: FER2013's train split as shipped here is strongly blurred (median gradient
    energy 6.7 against 26 on its sharp val split), so sharp faces are out of its domain.
    """
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))


def normalise(batch_uint8: torch.Tensor, method: str, sigma: float = 0.0) -> torch.Tensor:
    """Float (N, 1, S, S) input for a model, blurred by `sigma` first when it is above 0.

    Accepts uint8 (N, S, S) or (N, 1, S, S) pixels, or float pixels already scaled to [0, 1]
    (the output of training augmentation).
    """
    x = batch_uint8
    if x.dim() == 3:
        x = x.unsqueeze(1)
    x = blur(x.float() / 255.0 if x.dtype == torch.uint8 else x.float(), sigma)
    if method == "standardize":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / std.clamp_min(1e-3)
    if method == "equalize":
        return _equalize(x) * 2 - 1
    if method == "scale":
        return x * 2 - 1
    raise MLError(f"unknown normalisation {method!r}; choose one of {', '.join(NORMALISATIONS)}")
