"""Whole-photo analysis: opening any photo safely, crops, one batch per photo, annotation, CLI."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from ml.__main__ import main
from ml.checkpoint import Checkpoint, new_checkpoint, save_checkpoint
from ml.detect import FaceBox, get_detector
from ml.errors import InvalidImage
from ml.labels import FER_CLASSES, STATE_COLOURS, default_state_mapping
from ml.models import build_model
from ml.photo import (
    ClassifiedFace,
    PhotoAnalysis,
    analyse_image,
    annotate,
    crop_faces,
    detect_faces,
)
from ml.predict import Classifier
from ml.recipe import TrainConfig
from ml.safety import open_image
from tests.ml.gallery import draw_face

ARCH = "edu-vgg-s"


def tiny_checkpoint() -> Checkpoint:
    """An untrained 7-class FER model: enough to test plumbing, not accuracy."""
    torch.manual_seed(0)
    model = build_model(ARCH, len(FER_CLASSES))
    return new_checkpoint(model, list(FER_CLASSES), TrainConfig(arch=ARCH))


class CountingClassifier(Classifier):
    """A real Classifier that records the batch size of every predict_proba call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []

    def predict_proba(self, faces):
        self.calls.append(len(faces))
        return super().predict_proba(faces)


@pytest.fixture
def classifier():
    return CountingClassifier(tiny_checkpoint(), device="cpu")


def scene(size=(900, 600), faces=((120, 150, 110), (480, 140, 90), (700, 330, 130)), seed=0):
    """A photo with drawn faces; returns it and each face's (centre x, centre y, height)."""
    image = Image.new("RGB", size, (70, 90, 110))
    truth = []
    for i, (x, y, h) in enumerate(faces):
        face = draw_face(h, seed=seed + i, margin=0.3)
        image.paste(face, (x, y))
        truth.append((x + face.width / 2, y + face.height / 2, h))
    return image, truth


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def assert_boxes_on(boxes: list[FaceBox], truth, tolerance: float = 0.25):
    """One box per true face, centred on it and about its size."""
    assert len(boxes) == len(truth), boxes
    for cx, cy, h in truth:
        near = [b for b in boxes if abs(b.x + b.w / 2 - cx) < tolerance * h
                and abs(b.y + b.h / 2 - cy) < tolerance * h]  # fmt: skip
        assert len(near) == 1, (cx, cy, h, boxes)
        assert 0.7 * h < near[0].h < 1.5 * h, (near[0], h)


# --- opening photos -------------------------------------------------------------------------


def _face_photo() -> Image.Image:
    image = Image.new("RGB", (320, 240), (200, 200, 200))
    image.paste(draw_face(100, seed=1, margin=0.2), (100, 50))
    return image


@pytest.mark.parametrize(
    "mode, fmt",
    [("RGB", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("I;16", "PNG"), ("CMYK", "JPEG"),
     ("L", "PNG"), ("1", "PNG")],
)  # fmt: skip
def test_every_colour_mode_opens_as_rgb_and_its_face_is_found(mode, fmt):
    original = _face_photo()
    if mode == "RGBA":
        image = original.convert("RGBA")
        alpha = np.full((240, 320), 255, np.uint8)
        alpha[:, :40] = 0  # a transparent strip
        image.putalpha(Image.fromarray(alpha))
    elif mode == "P":
        image = original.quantize(64)
    elif mode == "I;16":
        image = Image.fromarray(np.asarray(original.convert("L")).astype(np.uint16) * 257)
    else:
        image = original.convert(mode)
    data = encoded(image, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    assert Image.open(io.BytesIO(data)).mode == image.mode

    opened = open_image(data)
    assert opened.mode == "RGB" and opened.size == (320, 240)
    pixels = np.asarray(opened).astype(int)
    if mode == "RGBA":
        assert (pixels[:, :40] == 255).all()  # transparency composited on white
    if mode == "I;16":  # 16-bit samples scaled to 8 bits, not clipped to white
        assert np.abs(pixels[..., 0] - np.asarray(original.convert("L"))).max() <= 1
    if mode == "CMYK":  # not inverted
        assert np.abs(pixels - np.asarray(original)).mean() < 3
    if mode != "1":  # a 1-bit dithered face is not a face any more
        assert len(get_detector().detect(opened)) == 1


@pytest.mark.parametrize("orientation, turn", [(6, Image.Transpose.ROTATE_90),
                                               (8, Image.Transpose.ROTATE_270),
                                               (3, Image.Transpose.ROTATE_180)])  # fmt: skip
def test_exif_orientation_is_applied_before_detection(orientation, turn):
    upright = _face_photo()
    # A camera stores the sensor's pixels and an Orientation tag saying how to turn them.
    stored = upright.transpose(turn)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(stored, "JPEG", quality=95, exif=exif)

    opened = open_image(data)
    assert opened.size == upright.size
    assert np.abs(np.asarray(opened).astype(int) - np.asarray(upright)).mean() < 4
    boxes = get_detector().detect(opened)
    assert len(boxes) == 1 and boxes[0].h > boxes[0].w  # an upright face is taller than wide


def test_open_image_accepts_path_bytes_and_file_object(tmp_path):
    path = tmp_path / "photo.png"
    _face_photo().save(path)
    for source in (path, str(path), path.read_bytes(), path.open("rb")):
        assert open_image(source).size == (320, 240)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    data = bytearray(encoded(Image.new("L", (1, 1))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_decompression_bombs_are_refused_before_decoding():
    with pytest.raises(InvalidImage, match="decompression bomb"):
        open_image(_png_claiming(30_000, 30_000))  # over Pillow's own hard limit
    with pytest.raises(InvalidImage, match="limit of 64,000,000 pixels"):
        open_image(_png_claiming(9_000, 8_000))  # under Pillow's limit, over ours
    with pytest.raises(InvalidImage, match="over the limit"):
        open_image(encoded(_face_photo()), max_pixels=320 * 239)


def test_corrupt_truncated_and_non_image_files_raise_invalid_image(tmp_path):
    jpeg = encoded(_face_photo(), "JPEG")
    text = tmp_path / "notes.jpg"
    text.write_text("these are lecture notes, not a photo\n")
    cases = {
        "truncated": jpeg[: len(jpeg) // 2],
        "corrupt": jpeg[:200] + bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8)),
        "empty": b"",
        "text renamed .jpg": text,
        "missing": tmp_path / "missing.jpg",
    }
    for name, source in cases.items():
        with pytest.raises(InvalidImage) as caught:
            open_image(source)
        assert "\n" not in str(caught.value), name
    with pytest.raises(InvalidImage, match="not an image file"):
        open_image(text)


# --- detection on large photos and crops ----------------------------------------------------


class SizeRecordingDetector:
    """The real detector, recording the size of each image it is given: RetinaFace alone, which
    the drawn faces are made for (CenterFace, in the default mode's mean, misses them; a drawn
    face RetinaFace scores 0.94 then falls to 0.47)."""

    def __init__(self):
        self.sizes = []

    def detect(self, image):
        self.sizes.append(image.size)
        return get_detector(centerface=False, score_threshold=0.8).detect(image)


def test_huge_photo_is_reduced_for_detection_and_boxes_map_back():
    image, truth = scene(size=(6000, 4000), faces=((500, 700, 600), (3000, 1500, 500),
                                                   (4800, 2900, 550)))  # fmt: skip
    detector = SizeRecordingDetector()
    boxes = detect_faces(image, detector)
    assert detector.sizes == [(3000, 2000)]
    assert_boxes_on(boxes, truth, tolerance=0.15)
    assert all(b.x + b.w <= 6000 and b.y + b.h <= 4000 for b in boxes)


def test_crop_is_a_square_of_the_box_height_centred_and_edge_padded():
    pixels = np.full((200, 300), 255, np.uint8)
    pixels[50:150, 100:180] = 0  # an 80x100 dark "face"
    image = Image.fromarray(pixels).convert("RGB")
    crops = crop_faces(image, [FaceBox(100, 50, 80, 100, 0.9)], 48)
    assert crops.shape == (1, 48, 48) and crops.dtype == np.uint8
    # The square is 100 px (the box height) wide, so 10 px of white on each side.
    column_means = crops[0].mean(axis=0)
    assert column_means[:3].min() > 200 and column_means[-3:].min() > 200
    assert column_means[10:38].max() < 20
    # A box at the corner: the part outside repeats the edge instead of turning black.
    corner = crop_faces(image, [FaceBox(0, 0, 30, 40, 0.9)], 48)
    assert corner.min() > 200


# --- analysis -------------------------------------------------------------------------------


def test_all_faces_of_a_photo_are_classified_in_one_call(classifier):
    image, truth = scene()
    analysis = analyse_image(image, classifier)
    assert classifier.calls == [3]
    assert (analysis.width, analysis.height) == image.size
    assert_boxes_on([f.box for f in analysis.faces], truth)
    for face in analysis.faces:
        assert sum(face.probabilities.values()) == pytest.approx(1, abs=1e-4)
        assert face.label == max(face.probabilities, key=face.probabilities.get)
        assert face.state == default_state_mapping(FER_CLASSES)[face.label]
    json.dumps(analysis.to_dict())


def test_a_huge_photo_is_reduced_once_and_its_faces_reported_in_its_own_pixels(classifier):
    image, truth = scene()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: the reduction happens before it is turned upright
    data = encoded(image.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)
    opened = open_image(data, max_side=300)
    assert opened.size == (225, 150) and opened.info["full_size"] == (900, 600)
    analysis = analyse_image(opened, classifier)
    assert (analysis.width, analysis.height) == (900, 600)
    assert_boxes_on([f.box for f in analysis.faces], truth, tolerance=0.3)


def test_photo_without_faces_gives_an_empty_list_and_no_forward_pass(classifier):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    analysis = analyse_image(encoded(Image.fromarray(noise)), classifier)
    assert analysis.faces == [] and (analysis.width, analysis.height) == (640, 480)
    assert classifier.calls == []


def test_annotation_draws_each_box_in_its_state_colour():
    image = Image.new("RGB", (400, 300), (255, 255, 255))
    faces = [
        ClassifiedFace(FaceBox(20 + 90 * i, 100, 60, 80, 0.99), {"x": 1.0}, "x", state)
        for i, state in enumerate(STATE_COLOURS)
    ]
    out = annotate(image, PhotoAnalysis(400, 300, faces))
    assert out.size == image.size and image.getpixel((20, 150)) == (255, 255, 255)
    for face in faces:
        colour = tuple(int(STATE_COLOURS[face.state][i : i + 2], 16) for i in (1, 3, 5))
        assert out.getpixel((face.box.x, face.box.y + 40)) == colour  # left edge, mid height


# --- CLI ------------------------------------------------------------------------------------


def test_cli_analyse_prints_faces_and_writes_annotated_photos(tmp_path, capsys):
    weights = tmp_path / "model.pt"
    save_checkpoint(weights, tiny_checkpoint())
    photos = tmp_path / "photos"
    photos.mkdir()
    image, truth = scene()
    image.save(photos / "class.jpg", quality=95)
    (photos / "broken.jpg").write_bytes(b"not a photo")
    out = tmp_path / "annotated"

    code = main(["analyse", "--weights", str(weights), str(photos), "--json",
                 "--annotate", str(out)])  # fmt: skip
    results = {r["file"].rsplit("/", 1)[1]: r for r in json.loads(capsys.readouterr().out)}
    assert code == 2  # one photo failed
    assert "not an image file" in results["broken.jpg"]["error"]
    faces = results["class.jpg"]["faces"]
    assert len(faces) == 3 and set(faces[0]) >= {"x", "y", "w", "h", "score", "probabilities",
                                                 "label", "state"}  # fmt: skip
    assert Image.open(out / "class.jpg").size == image.size
