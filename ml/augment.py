"""Batch augmentation of uint8 faces on their device: one grid sample plus elementwise ops."""

import math

import torch
import torch.nn.functional as F

# Face heights (px) that `small_faces` shrinks training faces to before enlarging them back.
SMALL_FACE_SIDES = (12, 16, 20, 24, 32, 40)


def augment_batch(
    batch_uint8: torch.Tensor, generator: torch.Generator, small_faces: float = 0.0
) -> torch.Tensor:
    """Random shift, scale, small rotation, horizontal flip, brightness/contrast and erasing;
    with `small_faces`, that share of the faces is also shrunk and enlarged back.

    All of it is one affine_grid/grid_sample plus elementwise ops on the whole batch, on the
    batch's device. Returns floats in [0, 1] of shape (N, 1, S, S).
    """
    x = batch_uint8.unsqueeze(1).float() / 255.0
    n, _, h, w = x.shape
    dev = x.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, device=dev, generator=generator) * (high - low) + low

    angle = uniform(-10, 10) * math.pi / 180
    scale = uniform(0.9, 1.1)
    flip = torch.where(torch.rand(n, device=dev, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # The sampling grid of the affine map, written out elementwise: F.affine_grid's batched
    # matmul with an inner size of 3 is several times slower on the CPU.
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=dev).view(1, h, 1)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=dev).view(1, 1, w)
    tx, ty = uniform(-0.1, 0.1).view(n, 1, 1), uniform(-0.1, 0.1).view(n, 1, 1)
    cos, sin, flip = cos.view(n, 1, 1), sin.view(n, 1, 1), flip.view(n, 1, 1)
    grid = torch.stack([cos * flip * xs - sin * ys + tx, sin * flip * xs + cos * ys + ty], -1)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    if small_faces > 0:
        # Most faces in classroom photos are 12-40 px tall and the crop is enlarged to the input
        # size, which blurs it; a model trained on sharp faces only lost 9 points of val
        # accuracy on faces shrunk to 24 px and 23 on 16 px (benchmarks/model_report.py).
        chosen = torch.rand(n, device=dev, generator=generator) < small_faces
        side = torch.randint(len(SMALL_FACE_SIDES), (n,), device=dev, generator=generator)
        for k, small in enumerate(SMALL_FACE_SIDES):
            pick = chosen & (side == k)
            if pick.any():
                shrunk = F.interpolate(x[pick], size=(small, small), mode="area")
                x[pick] = F.interpolate(shrunk, size=(h, w), mode="bilinear", align_corners=False)

    mean = x.mean(dim=(2, 3), keepdim=True)
    contrast = uniform(0.8, 1.2).view(n, 1, 1, 1)
    brightness = uniform(-0.1, 0.1).view(n, 1, 1, 1)
    x = ((x - mean) * contrast + mean + brightness).clamp_(0, 1)

    # Random erasing of one rectangle in a quarter of the images: expressions are read from
    # several face regions, so the model should not depend on one of them being visible. (More
    # erasing and stronger geometry slowed learning too much for CPU-sized budgets: measured.)
    eh = (uniform(0.1, 0.3) * h).long().view(n, 1, 1)
    ew = (uniform(0.1, 0.3) * w).long().view(n, 1, 1)
    top = (uniform(0, 1) * (h - eh.view(n))).long().view(n, 1, 1)
    left = (uniform(0, 1) * (w - ew.view(n))).long().view(n, 1, 1)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = (rows >= top) & (rows < top + eh) & (cols >= left) & (cols < left + ew)
    box &= (torch.rand(n, device=dev, generator=generator) < 0.25).view(n, 1, 1)
    fill = torch.rand(n, 1, 1, device=dev, generator=generator).expand(n, h, w)
    return torch.where(box.unsqueeze(1), fill.unsqueeze(1), x)
