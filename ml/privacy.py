"""The copy of a photo EduMood keeps after analysis: no recognisable face and no readable name,
whatever the detector found. Torch-free (the privacy receipt page reads its constants).

Why a whole-image transform and not only blurred boxes: a box blur is only as private as the
detector is thorough, and it missed about 1 face in 10 of 20 px or more in the shared group
photos, 1 meeting tile in 6, and never looks at name labels. So the whole photo is reduced to
blocks (an area average) and smoothed back: at most BLOCKS blocks along its long side, and
blocks large enough that a face of the photo's median detected size spans at most FACE_BLOCKS
of them, so the faces a detector misses beside the ones it finds (the same room, the same
meeting grid) are as coarse as those. Every detected face (and its margin) is then covered
with one flat colour, for the large faces the block size alone would leave too detailed. The
copy keeps the photo's layout and colours (where each box lies, which tile is which), which is
what the session page draws the results on.

It needs the stored boxes only, no detector: a worker makes it when a teacher tightens
retention, and `manage.py protect_stored_copies` makes it from old copies whose originals are
gone. Covering low-score candidates as well would need a second detection pass in the worker
and would still leave the misses it exists for; the block size covers those.

Measured with benchmarks/privacy_eval.py, as SSIM (7x7 windows, grayscale) of each region of
the copy against the original (1.0: identical; the sharp copies of faces the old box-only blur
missed scored 0.9-1.0): see that script's docstring for the figures.
"""

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFilter

# Blocks along the long side at most: 16 px blocks on a 1024 px photo, 30 px on a 1920 px
# screenshot, where a 20 px face is one block and a name label's letters are a fraction of one.
BLOCKS = 64
# A face of the median detected size spans at most this many blocks (a face 4 blocks tall is
# a blob: eyes, nose and mouth fall within one block each).
FACE_BLOCKS = 4
# Each detected box is widened by this fraction of its size on every side: hair, ears, chin.
BOX_MARGIN = 0.25
# The copy's long side at most: its detail is BLOCKS blocks across, so more pixels would only
# cost storage.
STORED_SIDE = 1280
# Stored with each copy (Photo.privacy_version): copies made by an older transform are made
# again by `manage.py protect_stored_copies`.
VERSION = 1

Box = tuple[int, int, int, int]  # x, y, w, h


def block_size(size: tuple[int, int], boxes: Sequence[Box]) -> float:
    """The side of one block, in the pixels of `size` (the space of `boxes`)."""
    sides = sorted(max(w, h) for _, _, w, h in boxes)
    median = sides[len(sides) // 2] if sides else 0
    return max(max(size) / BLOCKS, median / FACE_BLOCKS, 1.0)


def protected_copy(
    image: Image.Image, boxes: Sequence[Box], box_space: tuple[int, int] | None = None
) -> Image.Image:
    """The copy to store: `image` reduced to blocks and smoothed, each box covered.

    `boxes` are (x, y, w, h) in pixels of `box_space` (default: the image's own size; pass the
    photo's full size when the image was reduced while decoding). The copy has the photo's
    aspect ratio and a long side of at most STORED_SIDE (nor more than the image's), so boxes
    scale onto it.
    """
    space = box_space or image.size
    block = block_size(space, boxes)
    rgb = image.convert("RGB")
    cells = tuple(max(1, round(side / block)) for side in space)
    scale = min(STORED_SIDE, max(rgb.size)) / max(space)
    out_size = tuple(max(1, round(side * scale)) for side in space)
    small = rgb.resize(cells, Image.Resampling.BOX)
    # Smoothed at 8 px per block (a blur of a third of a block hides the block grid), then
    # enlarged: the same picture as blurring at full size, in a tenth of the time.
    mid = small.resize(tuple(8 * n for n in cells), Image.Resampling.BICUBIC)
    smooth = mid.filter(ImageFilter.GaussianBlur(8 / 3)).resize(out_size, Image.Resampling.BICUBIC)
    pixels = np.array(smooth)
    for x, y, w, h in boxes:
        x0, y0 = (round((v - BOX_MARGIN * d) * scale) for v, d in ((x, w), (y, h)))
        x1, y1 = (round((v + (1 + BOX_MARGIN) * d) * scale) for v, d in ((x, w), (y, h)))
        area = pixels[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
        if area.size:
            area[:] = area.reshape(-1, 3).mean(0).round()
    return Image.fromarray(pixels)


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """Mean structural similarity of two equal-shaped grayscale arrays (0-255), over every
    `window` x `window` square (uniform weights, sample covariances and the constants of Wang et
    al. 2004: scikit-image's structural_similarity defaults). 1.0: identical."""
    if a.shape != b.shape or min(a.shape) < window:
        raise ValueError(f"SSIM needs equal shapes of at least {window} px: {a.shape}, {b.shape}")
    x, y = a.astype(np.float64), b.astype(np.float64)
    n = window * window

    def mean(v: np.ndarray) -> np.ndarray:  # every window's mean, through an integral image
        c = np.pad(v, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        k = window
        return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / n

    mx, my = mean(x), mean(y)
    unbiased = n / (n - 1)
    vx = unbiased * (mean(x * x) - mx * mx)
    vy = unbiased * (mean(y * y) - my * my)
    vxy = unbiased * (mean(x * y) - mx * my)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def region_ssims(
    original: Image.Image, copy: Image.Image, boxes: Sequence[Box], at_most: int | None = None
) -> list[float]:
    """SSIM of each box (x, y, w, h in the original's pixels) of the copy, scaled to the
    original's size as a page shows it, against the same region of the original.

    With `at_most`, both regions are first reduced (area average) to at most that many pixels
    along their long side: SSIM's 7x7 windows then see a large face at a face's own scale. At
    the photo's pixels, a face enlarged from a small source (a 48 px webcam face shown at
    250 px) is smooth in every window, and any smooth copy of it scores high.
    """
    shown = copy if copy.size == original.size else copy.resize(original.size, Image.BICUBIC)
    a, b = original.convert("L"), shown.convert("L")
    scores = []
    for x, y, w, h in boxes:
        regions = [image.crop((x, y, x + w, y + h)) for image in (a, b)]
        if at_most and max(w, h) > at_most:
            size = tuple(max(7, round(side * at_most / max(w, h))) for side in (w, h))
            regions = [region.resize(size, Image.Resampling.BOX) for region in regions]
        scores.append(ssim(*(np.asarray(region) for region in regions)))
    return scores
