"""The one image-safety and the one zip-safety policy: every image and every zip that EduMood
reads from outside (photos, uploads, datasets) passes through these, with limits the caller
passes in (the web app from its settings, the CLI the defaults here). Torch-free: the web
process checks uploaded photos and dataset zips with it.
"""

import io
import math
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ml.errors import ImageProblem, InvalidImage, UnsafeArchive

MIB = 1 << 20
# 64 MP is above any phone or DSLR photo in its default mode and still fits a worker's memory
# as RGB; a header claiming more is treated as a decompression bomb.
DEFAULT_MAX_PIXELS = 64_000_000
# Images under this many pixels are cheap to decode however well they compress, so the pixels
# per byte limit leaves them alone.
PIXELS_PER_BYTE_CHECKED_ABOVE = 2_000_000
# Compressed entries above this size are checked for a bomb-like ratio (a small entry cannot
# expand into anything dangerous, however well it compresses).
RATIO_CHECKED_ABOVE = MIB
ZIP_SIGNATURE = b"PK\x03\x04"  # how a zip's first entry, and so a zip file, starts
# The image formats EduMood reads (Pillow's names), each with the extension its stored files
# get; IMAGE_EXTENSIONS name the images in dataset folders and zips.
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp"}
IMAGE_EXTENSIONS = (*IMAGE_FORMATS.values(), ".jpeg")


@contextmanager
def opened_image(
    source: bytes | str | Path | IO[bytes],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    formats: tuple[str, ...] | None = None,
    name: str = "",
    max_pixels_per_byte: float | None = None,
) -> Iterator[Image.Image]:
    """A Pillow image whose header passed the checks, not yet decoded.

    Refuses, as InvalidImage with a one-line reason: a missing or unreadable file, a non-image,
    a format outside `formats` (Pillow's names, e.g. "JPEG"), a header claiming more than
    `max_pixels` (before decoding: a decompression bomb), with `max_pixels_per_byte`, an image
    over PIXELS_PER_BYTE_CHECKED_ABOVE pixels that claims more pixels per byte of its image
    data (pixel amplification; see pixel_data_bytes: padding buys nothing), and any Pillow
    error raised while the caller decodes inside the `with` block (corrupt or truncated data).
    """
    prefix = f"{name}: " if name else ""
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            # Our own limit below replaces Pillow's warning (its hard error still applies).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fp)
        if formats is not None and image.format not in formats:
            raise InvalidImage(
                f"{prefix}{image.format} images are not accepted; use {', '.join(formats)}",
                ImageProblem.FORMAT,
            )
        if image.width * image.height > max_pixels:
            raise InvalidImage(
                f"{prefix}{image.width}×{image.height} pixels is over the limit of "
                f"{max_pixels:,} pixels (refused as a possible decompression bomb)",
                ImageProblem.TOO_MANY_PIXELS,
            )
        pixels = image.width * image.height
        if (
            max_pixels_per_byte is not None
            and isinstance(source, bytes)
            and pixels > PIXELS_PER_BYTE_CHECKED_ABOVE
        ):
            needed = pixels / max_pixels_per_byte
            used = pixel_data_bytes(source, image.format, enough=needed)
            if used < needed:
                raise InvalidImage(
                    f"{prefix}{pixels:,} pixels from {used:,} bytes of image data is over "
                    f"{max_pixels_per_byte:g} pixels per byte, which no photo needs (refused "
                    "as built to cost decoding time)",
                    ImageProblem.PIXELS_PER_BYTE,
                )
        # Not closed here: what the caller decodes may be returned (Pillow closes a file it
        # opened itself once the pixels are loaded).
        yield image
    except Image.DecompressionBombError as exc:
        raise InvalidImage(
            f"{prefix}refused as a decompression bomb ({exc})", ImageProblem.TOO_MANY_PIXELS
        ) from exc
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise InvalidImage(
            f"{prefix}cannot read the file ({exc.strerror})", ImageProblem.UNREADABLE
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"{prefix}not an image file", ImageProblem.NOT_AN_IMAGE) from exc
    # struct.error: some Pillow plugins raise it on malformed headers.
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise InvalidImage(
            f"{prefix}corrupt or truncated image ({exc})", ImageProblem.CORRUPT
        ) from exc


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
    upright size before the reduction is in `image.info["full_size"]` (analyse_image reports
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
        rgb = to_rgb(image)
        rgb.info["full_size"] = full[::-1] if turned else full
        return rgb


def to_rgb(image: Image.Image) -> Image.Image:
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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_START_OF_SCAN, JPEG_END = b"\xff\xda", b"\xff\xd9"


def pixel_data_bytes(data: bytes, fmt: str | None, enough: float = math.inf) -> int:
    """The bytes of a file that its decoder turns into pixels.

    Padding measured by the file's size would buy pixels: Pillow ignores what follows a PNG's
    IEND or its zlib stream's end, a JPEG's end marker or a WebP's RIFF size, and skips metadata
    chunks. So a PNG counts its zlib stream, a JPEG its scans (first start-of-scan to the end
    marker), a WebP its RIFF size; other formats (BMP: mostly raw pixels) their whole file.
    A PNG's count may stop once it reaches `enough` (all the caller needs to know). Not caught:
    junk between a JPEG's last entropy-coded data and its end marker, which libjpeg skips with
    a warning; telling it from scan data would take decoding the scan.
    """
    if fmt == "PNG" and data.startswith(PNG_SIGNATURE):
        return _png_stream_bytes(data, enough)
    if fmt == "JPEG":
        start = _jpeg_first_scan(data)
        if start < 0:
            return 0
        end = data.find(JPEG_END, start)  # entropy-coded data never holds FF D9 (stuffing)
        return (end + 2 if end >= 0 else len(data)) - start
    if fmt == "WEBP" and data[:4] == b"RIFF":
        return min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    return len(data)


# Inflated output is read in pieces of this size and dropped: memory stays small however large
# the image.
INFLATE_PIECE = 1 << 20


def _png_stream_bytes(data: bytes, enough: float) -> int:
    """The bytes of a PNG's zlib stream: its IDAT chunks up to where the stream ends (or up to
    the first chunk that reaches `enough`).

    Bytes after the end, in the last IDAT chunk or in further ones, are never decoded (Pillow
    accepts them), so finding the end takes inflating the stream: 0.33 s for the 7000x7000
    probe here, while a 12 MP photo reaches `enough` within its first IDAT chunks.
    """
    inflater, used, at = zlib.decompressobj(), 0, len(PNG_SIGNATURE)
    while at + 8 <= len(data) and not inflater.eof and used < enough:
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IEND":
            break
        if kind == b"IDAT":
            chunk = data[at + 8 : at + 8 + length]
            try:
                while chunk and not inflater.eof:
                    inflater.decompress(chunk, INFLATE_PIECE)
                    chunk = inflater.unconsumed_tail
            except zlib.error:
                break  # corrupt: decoding refuses it
            # Past the stream's end zlib keeps the rest in unused_data (and may leave it in
            # unconsumed_tail too); before it, everything fed was consumed.
            used += length - (len(inflater.unused_data) if inflater.eof else 0)
        at += 12 + length  # length and type, data, CRC
    return used


def _jpeg_first_scan(data: bytes) -> int:
    """Where a JPEG's first scan starts, walking the marker segments (an EXIF thumbnail inside
    APP1 holds its own markers, so a plain search could land in it); -1 when there is none."""
    at = 2  # after SOI
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return -1
        marker = data[at : at + 2]
        if marker[1] == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker == JPEG_START_OF_SCAN:
            return at
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    return -1


@dataclass(frozen=True)
class ZipLimits:
    """How far a zip may expand: per entry, in total, and entry size / compressed size."""

    member_bytes: int = 50 * MIB
    total_bytes: int = 4096 * MIB
    # Photos and PNG faces are compressed already: a zip squeezes them a few times at most.
    ratio: int = 100


@dataclass(frozen=True)
class ZipMember:
    """A file in a zip, with what is wrong with it ("" when it may be read)."""

    info: zipfile.ZipInfo
    path: PurePosixPath
    problem: str = ""


def zip_members(archive: zipfile.ZipFile, limits: ZipLimits) -> list[ZipMember]:
    """The files of a zip with a problem each, if any; folders and hidden files are left out.

    Hidden means any part of the path starting with "." or "__" (macOS's __MACOSX shadows,
    .DS_Store). Raises UnsafeArchive when the files together expand beyond the total limit.
    """
    members = []
    for info in archive.infolist():
        path = PurePosixPath(info.filename.replace("\\", "/"))
        hidden = any(p.startswith((".", "__")) and p != ".." for p in path.parts)
        if info.is_dir() or hidden:
            continue
        members.append(ZipMember(info, path, _problem(info, path, limits)))
    total = sum(m.info.file_size for m in members)
    if total > limits.total_bytes:
        raise UnsafeArchive(
            f"The zip expands to {_size(total)}, over the limit of {_size(limits.total_bytes)} "
            "(a zip bomb?)."
        )
    return members


def _problem(info: zipfile.ZipInfo, path: PurePosixPath, limits: ZipLimits) -> str:
    if path.is_absolute() or ".." in path.parts or ":" in (path.parts[0] if path.parts else ""):
        return "Unsafe path in the zip (absolute or leading outside the archive)."
    if info.flag_bits & 0x1:
        return "Encrypted zip entries are not accepted."
    if info.file_size > limits.member_bytes:
        return f"Larger than the limit of {_size(limits.member_bytes)} per file."
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_CHECKED_ABOVE and ratio > limits.ratio:
        return f"Compressed {ratio:.0f}:1, which no image file does (a zip bomb)."
    return ""


def _size(n: int) -> str:
    return f"{n // MIB} MB" if n >= MIB else f"{n:,} bytes"


@contextmanager
def open_member(
    archive: zipfile.ZipFile, member: ZipMember, limits: ZipLimits
) -> Iterator[IO[bytes]]:
    """A stream of a member without a problem that raises UnsafeArchive once it yields more
    than the per-file limit (the header's size may lie)."""
    if member.problem:
        raise UnsafeArchive(member.problem)
    with archive.open(member.info) as handle:
        yield _Bounded(handle, limits.member_bytes)


class _Bounded(io.RawIOBase):
    def __init__(self, handle: IO[bytes], limit: int):
        self.handle, self.left = handle, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.handle.read(min(len(buffer), self.left + 1))
        if len(chunk) > self.left:
            raise UnsafeArchive("Expands beyond the per-file size limit (a zip bomb).")
        self.left -= len(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)


def read_member(archive: zipfile.ZipFile, member: ZipMember, limits: ZipLimits) -> bytes:
    """The bytes of a member without a problem; UnsafeArchive if it is not what it claims."""
    with open_member(archive, member, limits) as stream:
        content = stream.read()
    if content[:4] == ZIP_SIGNATURE:
        raise UnsafeArchive("Zips inside the zip are not accepted.")
    return content
