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
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ml.detect import Detector, FaceBox, get_detector
from ml.errors import InvalidImage
from ml.labels import OTHER_COLOUR, STATE_COLOURS
from ml.preprocess import to_grayscale_array
from ml.safety import open_image, to_rgb

if TYPE_CHECKING:
    from ml.predict import Classifier

# Photos with a longer side are reduced (integer box filter, fast) before detection; crops are
# still taken from the original pixels.
DETECT_MAX_SIDE = 4096
# The crop is a square of CROP_SCALE x the face box's longer side (its height, for upright faces).
CROP_SCALE = 1.0


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
class ClassifiedFace:
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
    faces: list[ClassifiedFace]

    def to_dict(self) -> dict:
        """The JSON form used by the CLI and the web layer."""
        return {
            "width": self.width,
            "height": self.height,
            "faces": [f.to_dict() for f in self.faces],
        }


def analyse_image(
    image: Image.Image | bytes | str | Path,
    classifier: "Classifier",
    detector: Detector | None = None,
) -> PhotoAnalysis:
    """Detect every face of a photo and classify all of them in one predict_proba call.

    `image` is a PIL image (EXIF orientation already applied, as open_image does) or anything
    open_image accepts. A photo without faces gives an empty list.
    """
    image = to_rgb(image) if isinstance(image, Image.Image) else open_image(image)
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
            ClassifiedFace(
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
    out = to_rgb(image).copy()
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
