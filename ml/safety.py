"""The one image-safety and the one zip-safety policy: every image and every zip that EduMood
reads from outside (photos, uploads, datasets) passes through these, with limits the caller
passes in (the web app from its settings, the CLI the defaults here). Torch-free: the web
process opens photos with open_image too (to make their stored copies, ml.privacy).
"""

import io
import math
import struct
import warnings
import zipfile
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
    of file bytes over PIXELS_PER_BYTE_CHECKED_ABOVE pixels that claims more pixels per byte
    (pixel amplification), and any Pillow error raised while the caller decodes inside the
    `with` block (corrupt or truncated data).
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
            and pixels > max_pixels_per_byte * len(source)
        ):
            raise InvalidImage(
                f"{prefix}{pixels:,} pixels from a file of {len(source):,} bytes is over "
                f"{max_pixels_per_byte:g} pixels per byte, which no photo needs (refused as "
                "built to cost decoding time)",
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
