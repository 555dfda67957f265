"""Image folders and zips decoded once into compact in-memory uint8 datasets; attributes; splits."""

import csv
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np

from ml.errors import DataError, InvalidImage, UnsafeArchive
from ml.labels import FERPLUS_TO_FER
from ml.preprocess import to_grayscale_array
from ml.safety import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ZipLimits,
    opened_image,
    read_member,
    zip_members,
)


@dataclass
class ImageSet:
    """A labelled dataset held in memory as uint8 grayscale, ready for any number of epochs."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    files: list[str]
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "ImageSet":
        """The rows at `index` (class list kept whole so label ids stay valid)."""
        index = np.asarray(index, dtype=np.int64)
        return ImageSet(
            images=self.images[index],
            labels=self.labels[index],
            classes=list(self.classes),
            files=[self.files[i] for i in index],
            attributes={k: v[index] for k, v in self.attributes.items()},
            errors=list(self.errors),
        )


def decode_image(
    data: bytes | Path,
    size: int,
    face_crop: Callable | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode one image file (bytes or path) into a uint8 (size, size) grayscale array."""
    with opened_image(data, max_pixels) as image:
        image.load()
        if face_crop is not None:
            return face_crop(image, size)
        return to_grayscale_array(image, size)


def _folder_entries(root: Path) -> dict[str, list[tuple[str, Callable[[], bytes | Path]]]]:
    classes = {}
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p.name)):
        files = sorted(
            p
            for p in class_dir.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not _hidden(p.name)
        )
        classes[class_dir.name] = [(p.name, (lambda p=p: p)) for p in files]
    return classes


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _zip_entries(
    archive: zipfile.ZipFile, limits: ZipLimits
) -> dict[str, list[tuple[str, Callable[[], bytes]]]]:
    classes: dict[str, list] = {}
    for member in zip_members(archive, limits):
        # Only names are used (nothing is written to disk), but an entry that tries to escape
        # or to expand like a bomb is a sign of a hostile archive, so refuse it all.
        if member.problem:
            raise UnsafeArchive(f"zip entry {member.info.filename!r}: {member.problem}")
        if member.path.suffix.lower() not in IMAGE_EXTENSIONS or len(member.path.parts) < 2:
            continue
        read = partial(read_member, archive, member, limits)
        classes.setdefault(member.path.parts[-2], []).append((member.path.name, read))
    # A zip of "dataset/<class>/x.png" has one wrapping folder; class names are the parents.
    return {name: sorted(classes[name], key=lambda e: e[0]) for name in sorted(classes)}


def load_images(
    source: str | Path,
    size: int = 48,
    face_crop: Callable | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    zip_limits: ZipLimits = ZipLimits(),
) -> ImageSet:
    """Load `root/<class>/*.{png,jpg,jpeg,bmp,webp}` or a zip of the same, decoding images once.

    Unreadable files are listed in `errors` rather than raised; a missing path, no classes, a
    class without a single readable image or an unsafe zip (ml.safety) raise DataError.
    """
    path = Path(source)
    if not path.exists():
        raise DataError(f"dataset path {str(path)!r} does not exist")
    archive = None
    if path.is_dir():
        entries = _folder_entries(path)
    elif zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        entries = _zip_entries(archive, zip_limits)
    else:
        raise DataError(f"{str(path)!r} is neither a folder of class folders nor a zip")
    try:
        if not entries:
            raise DataError(f"no class folders with images found in {str(path)!r}")
        images, labels, files, errors = [], [], [], []
        for label, (name, members) in enumerate(entries.items()):
            before = len(labels)
            for file_name, read in members:
                rel = f"{name}/{file_name}"
                try:
                    images.append(decode_image(read(), size, face_crop, max_pixels))
                except (InvalidImage, UnsafeArchive) as exc:
                    errors.append((rel, str(exc)))
                    continue
                labels.append(label)
                files.append(rel)
            if len(labels) == before:
                raise DataError(f"class {name!r} has no readable images")
    finally:
        if archive is not None:
            archive.close()
    return ImageSet(
        images=np.stack(images).astype(np.uint8, copy=False),
        labels=np.asarray(labels, dtype=np.int64),
        classes=list(entries),
        files=files,
        errors=errors,
    )


# An attributes CSV may describe more files than were imported (other splits, unreadable
# images), but not without bound: at most this many rows per image, plus a few.
ROWS_PER_IMAGE = 10
EXTRA_ROWS = 1000
# Attributes describe a face in a few words (gender, age, skin tone), one column each. Every
# column becomes an array in the cache, a table on the dataset's page and a subgroup in every
# audit, so a header of 300,000 one-letter columns (830 KB zipped) cost a minute of worker time
# and 1.4 GB: the header and every row are measured before csv parses them.
MAX_ATTRIBUTE_COLUMNS = 100
MAX_ATTRIBUTE_CELL_CHARS = 255  # a file name (the longest cell a real CSV holds) fits
MAX_ATTRIBUTE_LINE_CHARS = MAX_ATTRIBUTE_COLUMNS * (MAX_ATTRIBUTE_CELL_CHARS + 3)

# The seed's age groups; bounds are inclusive lower edges.
AGE_GROUPS = (("Young", 0), ("Mid", 28), ("Senior", 55))


def age_groups(ages) -> np.ndarray:
    """Bin numeric ages into the seed's groups: Young < 28, Mid 28-54, Senior >= 55.

    Accepts numbers or numeric strings (as read from a CSV); missing or non-numeric values
    become "" (the ImageSet convention for a missing attribute).
    """
    out = np.full(len(ages), "", dtype=object)
    for i, value in enumerate(ages):
        try:
            age = float(value)
        except (TypeError, ValueError):
            continue
        if math.isnan(age):
            continue
        for name, lower in reversed(AGE_GROUPS):
            if age >= lower:
                out[i] = name
                break
    return out


def attach_attributes(data: ImageSet, csv_path: str | Path, age_bins: bool = False) -> ImageSet:
    """Join a CSV's columns onto the dataset by image file name (`file` column).

    Every other column becomes an attribute (an empty string where a file has no row). With
    `age_bins`, an `age_bin` column (Young/Mid/Senior) is derived from `age_estimate` or `age`.
    When the CSV has a `class` column, rows are matched on (class, file) so equal file names in
    different classes stay apart.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise DataError(f"attributes CSV {str(path)!r} does not exist")
    # Rows are streamed and only those of the dataset's files kept, so memory follows the
    # dataset, not the CSV; a CSV far longer than the dataset describes something else.
    max_rows = ROWS_PER_IMAGE * len(data.files) + EXTRA_ROWS
    table = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(_bounded_lines(handle, path))
            _check_header(reader.fieldnames or [], path)
            columns = [c for c in (reader.fieldnames or []) if c]
            if "file" not in columns:
                raise DataError(f"attributes CSV {str(path)!r} has no 'file' column")
            by_class = "class" in columns
            wanted = {_row_key(rel, by_class) for rel in data.files}
            for number, row in enumerate(reader, start=1):
                if number > max_rows:
                    raise DataError(
                        f"attributes CSV {str(path)!r} has more than {max_rows:,} rows for "
                        f"{len(data.files):,} images"
                    )
                _check_cells(row, path, number)
                name = PurePosixPath((row.get("file") or "").replace("\\", "/")).name
                key = (row.get("class", "") if by_class else "", name)
                if key in wanted:
                    table[key] = row
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read attributes CSV {str(path)!r}: {exc}") from exc
    keep = [c for c in columns if c not in ("file", "class", "split")]
    values = {c: [] for c in keep}
    for rel in data.files:
        row = table.get(_row_key(rel, by_class), {})
        for c in keep:
            values[c].append(row.get(c) or "")
    attributes = dict(data.attributes)
    attributes.update({c: np.asarray(v, dtype=object) for c, v in values.items()})
    if age_bins:
        source = next((c for c in ("age_estimate", "age") if c in attributes), None)
        if source is None:
            raise DataError("age binning needs an 'age_estimate' or 'age' column")
        attributes["age_bin"] = age_groups(attributes[source])
    return ImageSet(
        data.images,
        data.labels,
        list(data.classes),
        list(data.files),
        attributes,
        list(data.errors),
    )


def _bounded_lines(handle, path: Path):
    """The CSV's lines, refusing one longer than any row within the caps could be, before csv
    splits it (a quoted cell spanning lines is measured line by line)."""
    while line := handle.readline(MAX_ATTRIBUTE_LINE_CHARS + 1):
        if len(line) > MAX_ATTRIBUTE_LINE_CHARS:
            raise DataError(
                f"attributes CSV {str(path)!r} has a line over {MAX_ATTRIBUTE_LINE_CHARS:,} "
                f"characters (at most {MAX_ATTRIBUTE_COLUMNS} columns of "
                f"{MAX_ATTRIBUTE_CELL_CHARS} characters)"
            )
        yield line


def _check_header(columns: list[str], path: Path) -> None:
    if len(columns) > MAX_ATTRIBUTE_COLUMNS:
        raise DataError(
            f"attributes CSV {str(path)!r} has {len(columns):,} columns; at most "
            f"{MAX_ATTRIBUTE_COLUMNS} are accepted"
        )
    _check_cells({c: c for c in columns}, path, 0)


def _check_cells(row: dict, path: Path, number: int) -> None:
    """Refuse a cell longer than MAX_ATTRIBUTE_CELL_CHARS (row 0: the header). Cells beyond the
    header's columns (csv.DictReader lists them under the key None) are ignored, as before."""
    where = "the header" if number == 0 else f"row {number:,}"
    for column, value in row.items():
        if column is not None and value is not None and len(value) > MAX_ATTRIBUTE_CELL_CHARS:
            raise DataError(
                f"attributes CSV {str(path)!r} has a cell of {len(value):,} characters in "
                f"{where} (column {column[:40]!r}); at most {MAX_ATTRIBUTE_CELL_CHARS} are accepted"
            )


def crowd_targets(data: ImageSet, votes_csv: str | Path, weight: float) -> np.ndarray:
    """Soft training targets (N, C) float32: each image's label blended with its crowd votes.

    `votes_csv` holds FER+ vote counts per image (columns `file`, `class` and the FER+
    categories, as ../shared/data/fer2013/ferplus_train_votes.csv). A target is
    (1 - weight) x one-hot label + weight x the votes for the dataset's classes, normalised;
    an image without a row or without a vote for any of its classes keeps its one-hot label.
    The label keeps a share because evaluation is against the FER2013 labels, which the crowd's
    majority contradicts for about a third of the images.
    """
    voted = attach_attributes(data, votes_csv)
    columns = {FERPLUS_TO_FER[c]: c for c in FERPLUS_TO_FER if c in voted.attributes}
    missing = sorted(set(data.classes) - set(columns))
    if missing:
        raise DataError(f"crowd votes CSV {str(votes_csv)!r} has no votes for {missing}")
    votes = np.zeros((len(data), len(data.classes)), dtype=np.float64)
    for k, name in enumerate(data.classes):
        cells = voted.attributes[columns[name]]
        try:
            votes[:, k] = [float(v) if v != "" else 0.0 for v in cells]
        except ValueError as exc:
            raise DataError(f"crowd votes for {name!r} must be numbers: {exc}") from exc
    one_hot = np.eye(len(data.classes))[data.labels]
    totals = votes.sum(1, keepdims=True)
    has_votes = totals[:, 0] > 0
    shares = np.where(has_votes[:, None], votes / np.maximum(totals, 1e-12), one_hot)
    return blend_targets(data, shares, weight)


def blend_targets(data: ImageSet, shares: np.ndarray, weight: float) -> np.ndarray:
    """Soft training targets (N, C) float32: (1 - weight) x each image's one-hot label +
    weight x its row of `shares` (distributions over the dataset's classes)."""
    if not 0 <= weight <= 1:
        raise DataError(f"soft-target weight must be between 0 and 1, got {weight}")
    if shares.shape != (len(data), len(data.classes)):
        raise DataError(
            f"soft targets must be one distribution over {len(data.classes)} classes per image "
            f"({len(data)}), got shape {shares.shape}"
        )
    one_hot = np.eye(len(data.classes))[data.labels]
    return ((1 - weight) * one_hot + weight * shares).astype(np.float32)


def _row_key(rel: str, by_class: bool) -> tuple[str, str]:
    cls, name = rel.rsplit("/", 1)
    return (cls if by_class else "", name)


def stratified_split(data: ImageSet, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """A class-stratified (train, val) split, the same for the same seed."""
    if not 0 < val_fraction < 1:
        raise DataError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    from sklearn.model_selection import train_test_split  # deferred: slow import for the CLI

    index = np.arange(len(data))
    try:
        train_idx, val_idx = train_test_split(
            index, test_size=val_fraction, random_state=seed, stratify=data.labels
        )
    except ValueError as exc:
        raise DataError(f"cannot split the dataset: {exc}") from exc
    return data.subset(np.sort(train_idx)), data.subset(np.sort(val_idx))
