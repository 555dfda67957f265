"""ml.safety's pixels-per-byte rule counts the bytes a decoder turns into pixels, not padding."""

import io
import struct
import zlib

import pytest
from PIL import Image

from ml.errors import ImageProblem, InvalidImage
from ml.safety import opened_image, pixel_data_bytes


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def flat_png(width: int, height: int, *, after_stream: bytes = b"", chunks=()) -> bytes:
    """A grey PNG of any size built row by row (never whole in memory): a few KB per 10 MP.
    `after_stream` follows the zlib stream inside its IDAT chunk; `chunks` follow that chunk."""
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + one grey byte per pixel
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + _chunk(b"IDAT", data + after_stream)
        + b"".join(_chunk(kind, content) for kind, content in chunks)
        + _chunk(b"IEND", b"")
    )


def padded(data: bytes, size: int) -> bytes:
    return data + b"\0" * (size - len(data))


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_a_large_png_padded_past_iend_is_judged_by_its_image_data():
    # The probe: 7000x7000 (49 MP, under the 50 MP limit) padded to 562 KB passed 100 pixels
    # per byte by its file size; its image data is a few tens of KB.
    png = flat_png(7000, 7000)
    bomb = padded(png, 562_000)
    assert pixel_data_bytes(bomb, "PNG") == len(png) - 57  # signature, IHDR, IEND, IDAT framing
    with (
        pytest.raises(InvalidImage, match="over 100 pixels per byte") as refused,
        opened_image(bomb, 50_000_000, max_pixels_per_byte=100),
    ):
        pass
    assert refused.value.problem == ImageProblem.PIXELS_PER_BYTE


@pytest.mark.parametrize(
    "padding",
    [
        {"after_stream": b"\0" * 500_000},  # inside the IDAT chunk, after the zlib stream
        {"chunks": [(b"IDAT", b"\0" * 500_000)]},  # a further IDAT chunk
        {"chunks": [(b"zzZz", b"\0" * 500_000)]},  # a private chunk Pillow skips
    ],
    ids=["in-idat", "extra-idat", "private-chunk"],
)
def test_padding_inside_a_png_that_pillow_never_decodes_buys_no_pixels(padding):
    plain, bomb = flat_png(7000, 7000), flat_png(7000, 7000, **padding)
    with Image.open(io.BytesIO(bomb)) as image:
        image.load()  # Pillow takes it: only the size rule can refuse it
    assert pixel_data_bytes(bomb, "PNG") == pixel_data_bytes(plain, "PNG")
    with (
        pytest.raises(InvalidImage, match="pixels per byte"),
        opened_image(bomb, 50_000_000, max_pixels_per_byte=100),
    ):
        pass


def test_padding_after_the_end_of_a_jpeg_or_webp_buys_no_pixels():
    noise = Image.effect_noise((300, 200), 60).convert("RGB")
    for fmt in ("JPEG", "WEBP"):
        data = encoded(noise, fmt)
        used = pixel_data_bytes(data, fmt)
        assert 0.8 * len(data) < used <= len(data), fmt
        assert pixel_data_bytes(padded(data, 10 * len(data)), fmt) == used, fmt


def test_a_jpeg_counts_its_scans_not_its_metadata_or_thumbnail():
    noise = Image.effect_noise((300, 200), 60).convert("RGB")
    plain = encoded(noise, "JPEG")
    exif = Image.Exif()
    exif[0x010E] = "x" * 20_000  # ImageDescription: 20 KB of metadata
    with_metadata = encoded(noise, "JPEG", exif=exif)
    assert len(with_metadata) > len(plain) + 20_000
    assert pixel_data_bytes(with_metadata, "JPEG") == pixel_data_bytes(plain, "JPEG")


def test_a_real_photo_passes_with_room_to_spare():
    noise = Image.effect_noise((2000, 1500), 30).convert("RGB")
    for fmt in ("JPEG", "PNG", "WEBP"):
        data = encoded(noise, fmt)
        with opened_image(data, max_pixels_per_byte=100) as image:
            image.load()
        assert 2000 * 1500 / pixel_data_bytes(data, fmt) < 10, fmt
