"""Whole-photo analysis: open a photo safely, find every face, classify all faces in one batch.

Serving crops are framed like the classifier's training data (FER2013's tight 48x48 faces):
a square as tall as the detector's face box, centred on it. Measured by detecting FER2013
faces pasted into larger scenes: the FER square is 0.97x the detected box height, centred
within 2 %; re-cropped at 0.9x / 1.0x / 1.1x / 1.3x the box height, 2000 such faces got the
prediction of their original crop back 73 % / 73 % / 65 % / 49 % of the time
(benchmarks/photo_latency.py --fer): wider crops than FER's cost accuracy quickly.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ml.detect import Detector, FaceBox, get_detector
from ml.errors import InvalidImage
from ml.labels import OTHER_COLOUR, STATE_COLOURS
from ml.preprocess import to_grayscale_array
from ml.safety import DEFAULT_MAX_PIXELS, opened_image

if TYPE_CHECKING:
    from ml.predict import Classifier

# Photos with a longer side are reduced (integer box filter, fast) before detection; crops are
# still taken from the original pixels.
DETECT_MAX_SIDE = 4096
# The crop is a square of CROP_SCALE x the face box's longer side (its height, for upright faces).
CROP_SCALE = 1.0


# --- opening photos -------------------------------------------------------------------------


def open_image(
    source: bytes | str | Path | IO[bytes],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    max_side: int | None = None,
) -> Image.Image:
    """A decoded RGB image with its EXIF orientation applied.

    Accepts file bytes, a path or a binary file object. Any colour mode is turned into RGB:
    transparency is composited on white, 16-bit and float samples are scaled to 8 bits.
    Raises InvalidImage for a missing, non-image, corrupt or truncated file and for an image
    over `max_pixels` (checked from the header, before decoding: a decompression bomb).

    With `max_side`, a photo with a longer side is reduced once, as it is decoded (a JPEG is
    decoded straight at 1/2 to 1/8 scale), and everything after works on the small copy; its
    upright size before the reduction is in `image.info["full_size"]` (analyze_photo reports
    boxes in it).
    """
    name = str(source) if isinstance(source, str | Path) else ""
    with opened_image(source, max_pixels, name=name) as image:
        full = image.size
        if max_side and max(full) > max_side:
            shrink = max_side / max(full)
            image.draft("RGB", (math.ceil(full[0] * shrink), math.ceil(full[1] * shrink)))
        image.load()
        factor = math.ceil(max(image.size) / max_side) if max_side else 1
        if factor > 1:
            image = image.reduce(factor)
        reduced = image.size
        ImageOps.exif_transpose(image, in_place=True)
        turned = image.size != reduced
        rgb = _to_rgb(image)
        rgb.info["full_size"] = full[::-1] if turned else full
        return rgb


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels of an image in any Pillow mode."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(_to_8bit(np.asarray(image))).convert("RGB")
    if "A" in image.mode or "a" in image.mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise InvalidImage(f"unsupported colour mode {image.mode}") from exc


def _to_8bit(samples: np.ndarray) -> np.ndarray:
    """uint8 from 16-bit, 32-bit integer or float samples (16-bit range unless larger)."""
    samples = samples.astype(np.float64)
    top = samples.max(initial=0.0)
    if top <= 255:
        return np.clip(samples, 0, 255).astype(np.uint8)
    scale = 255 / (65535 if top <= 65535 else top)
    return np.clip(samples * scale, 0, 255).round().astype(np.uint8)


# --- faces ----------------------------------------------------------------------------------


def detect_faces(image: Image.Image, detector: Detector | None = None) -> list[FaceBox]:
    """Faces in `image`, in its own pixel coordinates.

    A photo longer than DETECT_MAX_SIDE is reduced by an integer factor first (no detector
    needs more pixels than that, and a 50 MP resize would cost more than the detection).
    """
    detector = detector or get_detector()
    factor = math.ceil(max(image.size) / DETECT_MAX_SIDE)
    if factor <= 1:
        return detector.detect(image)
    boxes = detector.detect(image.reduce(factor))
    return [box.scaled(factor).clipped(*image.size) for box in boxes]


def crop_faces(
    image: Image.Image, boxes: list[FaceBox], size: int, scale: float = CROP_SCALE
) -> np.ndarray:
    """uint8 (N, size, size) grayscale face crops framed like FER2013's faces.

    Each crop is a square of `scale` x the box's longer side, centred on the box; parts
    outside the photo repeat its edge pixels (black borders would shift the per-image
    brightness normalisation of the classifier).
    """
    crops = np.zeros((len(boxes), size, size), dtype=np.uint8)
    width, height = image.size
    for i, box in enumerate(boxes):
        side = max(1, round(scale * max(box.w, box.h)))
        x0 = round(box.x + box.w / 2 - side / 2)
        y0 = round(box.y + box.h / 2 - side / 2)
        inside = (max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side))
        if inside[0] >= inside[2] or inside[1] >= inside[3]:
            raise InvalidImage(f"face box {box} lies outside the {width}x{height} image")
        gray = np.asarray(image.crop(inside).convert("L"))
        pad = ((inside[1] - y0, y0 + side - inside[3]), (inside[0] - x0, x0 + side - inside[2]))
        square = np.pad(gray, pad, mode="edge") if any(map(any, pad)) else gray
        crops[i] = to_grayscale_array(Image.fromarray(square), size)
    return crops


@dataclass
class FaceResult:
    """One face of a photo: where it is and what the classifier reads in it."""

    box: FaceBox
    probabilities: dict[str, float]
    label: str
    state: str

    def to_dict(self) -> dict:
        """The JSON form used by the CLI and the web layer."""
        return {
            **self.box.to_dict(),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "label": self.label,
            "state": self.state,
        }


@dataclass
class PhotoAnalysis:
    """All faces of one photo, in original-pixel coordinates."""

    width: int
    height: int
    faces: list[FaceResult]

    def to_dict(self) -> dict:
        """The JSON form used by the CLI and the web layer."""
        return {
            "width": self.width,
            "height": self.height,
            "faces": [f.to_dict() for f in self.faces],
        }


def analyze_photo(
    image: Image.Image | bytes | str | Path,
    classifier: "Classifier",
    detector: Detector | None = None,
) -> PhotoAnalysis:
    """Detect every face of a photo and classify all of them in one predict_proba call.

    `image` is a PIL image (EXIF orientation already applied, as open_image does) or anything
    open_image accepts. A photo without faces gives an empty list.
    """
    image = _to_rgb(image) if isinstance(image, Image.Image) else open_image(image)
    width, height = image.info.get("full_size", image.size)
    boxes = detect_faces(image, detector)
    if not boxes:
        return PhotoAnalysis(width, height, [])
    probabilities = classifier.predict_proba(crop_faces(image, boxes, classifier.input_size))
    scale = width / image.width  # boxes are reported in the photo's own pixels
    faces = []
    for box, row in zip(boxes, probabilities, strict=True):
        label = classifier.classes[int(row.argmax())]
        faces.append(
            FaceResult(
                box=box if scale == 1 else box.scaled(scale).clipped(width, height),
                probabilities={c: float(p) for c, p in zip(classifier.classes, row, strict=True)},
                label=label,
                state=classifier.state_of(label),
            )
        )
    return PhotoAnalysis(width, height, faces)


def annotate(image: Image.Image, analysis: PhotoAnalysis) -> Image.Image:
    """A copy of the photo with each face boxed in its state's colour and the state named.

    No identity is drawn: only the box and the estimated state. The name is sized to its face
    (a crowd's names would otherwise cover the faces) and left out for faces under 24 px,
    whose box colour says the state.
    """
    out = _to_rgb(image).copy()
    draw = ImageDraw.Draw(out)
    line = max(1, round(max(out.size) / 500))
    for face in analysis.faces:
        colour = STATE_COLOURS.get(face.state, OTHER_COLOUR)
        b = face.box
        draw.rectangle((b.x, b.y, b.x + b.w - 1, b.y + b.h - 1), outline=colour, width=line)
        if b.h < 24:
            continue
        font = ImageFont.load_default(size=min(round(max(out.size) / 60), max(9, b.h // 4)))
        left, top, right, bottom = draw.textbbox((0, 0), face.state, font=font)
        height = bottom - top + 2 * line
        ty = b.y - height if b.y >= height else b.y + b.h
        draw.rectangle((b.x, ty, b.x + right - left + 2 * line, ty + height - 1), fill=colour)
        draw.text((b.x + line - left, ty + line - top), face.state, fill="white", font=font)
    return out
