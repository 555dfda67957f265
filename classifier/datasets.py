"""Datasets: safe uploads, the import job, the immutable decoded cache of each version."""

import csv
import hashlib
import json
import os
import shutil
import tempfile
import uuid
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from edumood_site import storage
from edumood_site.figures import plain_figures
from edumood_site.work import WorkCancelled
from ml.errors import DataError
from ml.safety import IMAGE_EXTENSIONS

from .choices import JobKind
from .models import AttributeSource, Dataset, DatasetVersion, Job

ATTRIBUTES_FILE = "attributes.csv"
# Images larger than this (longest side, pixels) are photos, not face crops: import detects and
# crops the largest face in them, as the seed's preprocessing did.
FACE_CROP_ABOVE = 160
UPLOAD_DIR = "datasets/uploads"
# Invalid entries of an identical import are listed in the job's log, up to this many.
MAX_LOGGED_ERRORS = 50


class DatasetImportError(Exception):
    """An upload or server folder that cannot be imported; the message is shown to the admin."""

    plain = True  # a failed job shows the message alone (Job.failure_reason)


def save_upload(uploaded) -> str:
    """Store an uploaded zip (through the storage: the import job may run on another host)
    before queueing its import; returns its stored name.

    Rejects at once what the import would reject anyway: too big, or not a zip at all.
    """
    if uploaded.size > settings.EDUMOOD_MAX_DATASET_BYTES:
        raise DatasetImportError(
            f"The file is {uploaded.size} bytes; the limit is {settings.EDUMOOD_MAX_DATASET_BYTES}."
        )
    if not zipfile.is_zipfile(uploaded):
        raise DatasetImportError("The file is not a zip archive.")
    if _flat_images(uploaded):
        raise DatasetImportError(
            "The zip holds images outside class folders. Put each class's images in a folder "
            "named after the class (e.g. happy/001.png, sad/002.png) and zip those folders."
        )
    return default_storage.save(f"{UPLOAD_DIR}/{uuid.uuid4().hex}.zip", uploaded)


def _flat_images(zip_file) -> bool:
    """Whether a zip has images directly at its top level, where no folder names their class."""
    with zipfile.ZipFile(zip_file) as archive:
        names = [PurePosixPath(n.replace("\\", "/")) for n in archive.namelist()]
    return any(len(n.parts) == 1 and n.suffix.lower() in IMAGE_EXTENSIONS for n in names)


def resolve_server_folder(folder: str) -> Path:
    """A server-side folder inside EDUMOOD_DATASET_IMPORT_ROOT, or DatasetImportError."""
    root = Path(settings.EDUMOOD_DATASET_IMPORT_ROOT).resolve()
    path = (root / folder).resolve()
    if path != root and root not in path.parents:
        raise DatasetImportError(f"{folder!r} is outside the allowed import root.")
    if not path.is_dir():
        raise DatasetImportError(f"{folder!r} is not a folder under the import root.")
    return path


# --- reading sources ----------------------------------------------------------------------------


def zip_limits():
    """ml.safety's zip limits for a dataset: entries as large as an uploaded photo may be, all
    of them together as large as a dataset may be."""
    from ml.safety import ZipLimits

    return ZipLimits(
        member_bytes=settings.EDUMOOD_MAX_UPLOAD_BYTES,
        total_bytes=settings.EDUMOOD_MAX_DATASET_BYTES,
    )


def _image_entries(source: Path) -> tuple[int, int, list[str]]:
    """(number of image files, their total bytes, names of other files) of a zip or folder."""
    from ml.safety import zip_members

    if source.is_dir():
        names = [
            (str(p.relative_to(source)), p.stat().st_size) for p in source.rglob("*") if p.is_file()
        ]
    else:
        with zipfile.ZipFile(source) as archive:
            names = [
                (m.info.filename, m.info.file_size) for m in zip_members(archive, zip_limits())
            ]
    count, total, others = 0, 0, []
    for name, size in names:
        path = PurePosixPath(name.replace("\\", "/"))
        if any(part.startswith((".", "__")) for part in path.parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            count += 1
            total += size
        elif path.name != ATTRIBUTES_FILE:
            others.append(name)
    return count, total, others


def _extract_attributes(source: Path, workdir: Path) -> Path | None:
    """The attributes CSV at the top of the folder or zip (or of its one wrapping folder)."""
    if source.is_dir():
        found = sorted(source.glob(f"*/{ATTRIBUTES_FILE}")) + [source / ATTRIBUTES_FILE]
        found = [p for p in found if p.is_file()]
        return found[-1] if found else None
    from ml.safety import open_member, zip_members

    limits = zip_limits()
    with zipfile.ZipFile(source) as archive:
        for member in zip_members(archive, limits):
            if member.path.name == ATTRIBUTES_FILE and len(member.path.parts) <= 2:
                target = workdir / ATTRIBUTES_FILE
                # Streamed to disk (and from there row by row): never whole in memory.
                with open_member(archive, member, limits) as stream, target.open("wb") as out:
                    shutil.copyfileobj(stream, out)
                return target
    return None


def _age_column(csv_path: Path) -> bool:
    from ml.data import MAX_ATTRIBUTE_LINE_CHARS

    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        # Bounded: a longer header is refused by attach_attributes, before csv splits it.
        header = next(csv.reader([handle.readline(MAX_ATTRIBUTE_LINE_CHARS + 1)]), [])
    return any(c in header for c in ("age_estimate", "age"))


class _Decoder:
    """The per-image hook of ml.data.load_images: crops faces in photos, reports, cancels.

    load_images calls it once per image, which is the only point inside a long import where
    progress can be written and the cancel flag read.
    """

    def __init__(self, job: Job, total: int, mode: str):
        self.job, self.total, self.mode, self.done = job, max(total, 1), mode, 0
        self.sizes: Counter = Counter()

    def __call__(self, image, size: int):
        from ml.preprocess import to_grayscale_array

        self.done += 1
        self.sizes[image.size] += 1
        if self.done % 64 == 0:
            if self.job.should_stop():
                raise WorkCancelled()
            self.job.set_progress(
                0.05 + 0.8 * self.done / self.total, f"Decoded {self.done} of {self.total} images"
            )
        if self.mode == "never" or (self.mode == "auto" and max(image.size) <= FACE_CROP_ABOVE):
            return to_grayscale_array(image, size)
        return self._largest_face(image.convert("RGB"), size)

    @staticmethod
    def _largest_face(image, size: int):
        from ml.errors import InvalidImage
        from ml.photo import crop_faces, detect_faces

        boxes = detect_faces(image)
        if not boxes:
            raise InvalidImage("no face found")
        largest = max(boxes, key=lambda box: box.w * box.h)
        return crop_faces(image, [largest], size)[0]


# --- the cache ------------------------------------------------------------------------------


def content_hash(data) -> str:
    """sha256 of what a model learns from: pixels, labels, class names and attributes."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(data.images).tobytes())
    digest.update(np.ascontiguousarray(data.labels, dtype=np.int64).tobytes())
    digest.update(json.dumps(list(data.classes)).encode())
    for column in sorted(data.attributes):
        digest.update(json.dumps([column, [str(v) for v in data.attributes[column]]]).encode())
    return digest.hexdigest()


def write_cache(data, path: Path) -> None:
    """Write the ImageSet as an .npz (no pickled objects), atomically."""
    arrays = {
        "images": data.images,
        "labels": data.labels,
        "classes": np.asarray(data.classes, dtype=str),
        "files": np.asarray(data.files, dtype=str),
    }
    for column, values in data.attributes.items():
        arrays[f"attr__{column}"] = np.asarray([str(v) for v in values], dtype=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_version(version: DatasetVersion):
    """The ml.data.ImageSet of a dataset version, read from its cache."""
    from ml.data import ImageSet

    with storage.local_copy(version.cache) as path, np.load(path, allow_pickle=False) as arrays:
        attributes = {
            key.removeprefix("attr__"): arrays[key].astype(object)
            for key in arrays.files
            if key.startswith("attr__")
        }
        return ImageSet(
            images=arrays["images"],
            labels=arrays["labels"].astype(np.int64),
            classes=[str(c) for c in arrays["classes"]],
            files=[str(f) for f in arrays["files"]],
            attributes=attributes,
        )


def dataset_figures(data) -> dict[str, dict]:
    """ml.eda's figures of an ImageSet (class balance, intensities, a grid of sample images) as
    plain JSON for the dataset page: made where the images are decoded, stored on the version."""
    from ml.eda import figures

    return plain_figures(figures(data))


def _attribute_counts(data) -> dict:
    counts = {}
    for column, values in data.attributes.items():
        names, sizes = np.unique(np.asarray(values, dtype=str), return_counts=True)
        counts[column] = {(n or "(missing)"): int(s) for n, s in zip(names, sizes, strict=True)}
    return counts


# --- the import job -------------------------------------------------------------------------


def import_dataset(job: Job) -> dict:
    """Decode, crop and check every image, then store one immutable version, or nothing.

    Whatever the outcome (stored, identical to a version already stored, failed), a dataset the
    import left without any version is removed; the uploaded zip goes when the job closes
    (Job._discard_working_files).
    """
    dataset = Dataset.objects.get(pk=job.params["dataset"])
    try:
        return _import(job, dataset)
    finally:
        if not dataset.versions.exists() and not _other_imports_pending(job, dataset):
            dataset.delete()


def plain_import_error(error: Exception, source: Path, named: str) -> str:
    """An ml.data error in words for the admin: the stored file's path becomes what they gave
    (the uploaded zip, their folder), and a set without class folders says how to fix it."""
    message = str(error).replace(repr(str(source)), named).replace(str(source), named)
    if message.startswith("no class folders"):
        message += (
            ". Put each class's images in a folder named after the class (e.g. happy/001.png) "
            "and import those folders."
        )
    return message[:1].upper() + message[1:]


def _other_imports_pending(job: Job, dataset: Dataset) -> bool:
    return (
        Job.objects.filter(kind=JobKind.IMPORT_DATASET, params__dataset=dataset.pk)
        .exclude(pk=job.pk)
        .exclude(status__in=Job.TERMINAL)
        .exists()
    )


def _import(job: Job, dataset: Dataset) -> dict:
    if not job.params.get("upload"):
        return _import_from(job, dataset, resolve_server_folder(job.params["folder"]))
    if not default_storage.exists(job.params["upload"]):
        raise DatasetImportError("The uploaded file is gone; upload it again.")
    with storage.local_copy(job.params["upload"]) as source:
        return _import_from(job, dataset, source)


def _import_from(job: Job, dataset: Dataset, source: Path) -> dict:
    from ml.data import attach_attributes, load_images
    from ml.eda import summarize

    count, total_bytes, others = _image_entries(source)
    if total_bytes > settings.EDUMOOD_MAX_DATASET_BYTES:
        raise DatasetImportError(
            f"The images add up to {total_bytes} bytes; the limit is "
            f"{settings.EDUMOOD_MAX_DATASET_BYTES}."
        )
    if job.params.get("upload"):
        named = "the uploaded zip"
    else:
        root = Path(settings.EDUMOOD_DATASET_IMPORT_ROOT).resolve()
        named = f"the folder {source.relative_to(root)}"
    job.add_log(f"Importing {count} images from {named}")
    job.set_progress(0.05, f"Decoding {count} images", force=True)
    decoder = _Decoder(job, count, job.params.get("face_crop", "auto"))
    workdir = Path(tempfile.mkdtemp(prefix="edumood-import-"))
    try:
        try:
            data = load_images(
                source, size=48, face_crop=decoder,
                max_pixels=settings.EDUMOOD_MAX_IMAGE_PIXELS, zip_limits=zip_limits(),
            )  # fmt: skip
        except DataError as exc:
            raise DatasetImportError(plain_import_error(exc, source, named)) from exc
        attributes_csv = _extract_attributes(source, workdir)
        if attributes_csv is not None:
            data = attach_attributes(data, attributes_csv, age_bins=_age_column(attributes_csv))
            job.add_log(f"Attributes: {', '.join(data.attributes)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    errors = [{"file": f, "detail": d} for f, d in data.errors]
    errors += [{"file": name, "detail": "not an image file"} for name in others]
    job.set_progress(0.88, "Summarising", force=True)
    digest = content_hash(data)
    existing = DatasetVersion.objects.select_related("dataset").filter(content_hash=digest).first()
    if existing is not None:
        for error in errors[:MAX_LOGGED_ERRORS]:
            job.add_log(f"Invalid entry {error['file']}: {error['detail']}")
        return {
            "outcome": f"Identical to dataset {existing.dataset.name} (version "
            f"{existing.number}); nothing new stored.",
            "identical_to": existing.pk,
            "invalid": len(errors),
            "errors": errors[:1000],
        }
    summary = summarize(data)
    summary["original_sizes"] = {f"{w}x{h}": n for (w, h), n in decoder.sizes.most_common(20)}
    odd = sum(n for (w, h), n in decoder.sizes.items() if (w, h) != (48, 48))
    if odd:
        (w, h), _ = next((size, n) for size, n in decoder.sizes.most_common() if size != (48, 48))
        summary["warnings"].append(
            f"{odd} of {decoder.done} images were not 48x48 (e.g. {w}x{h}) and were "
            + ("cropped to a face or resized" if decoder.mode != "never" else "resized")
        )
    figures = dataset_figures(data)
    with tempfile.TemporaryDirectory(prefix="edumood-") as scratch:
        cache = Path(scratch) / f"{digest[:24]}.npz"
        write_cache(data, cache)
        stored = storage.store(cache, f"datasets/{cache.name}")
    try:
        with transaction.atomic():
            last = dataset.versions.order_by("-number").values_list("number", flat=True).first()
            version = DatasetVersion.objects.create(
                dataset=dataset,
                number=(last or 0) + 1,
                content_hash=digest,
                cache=stored,
                classes=list(data.classes),
                image_size=int(data.images.shape[1]),
                size=len(data),
                class_counts=summary["class_counts"],
                attribute_counts=_attribute_counts(data),
                attribute_source=job.params.get("attribute_source", AttributeSource.ANNOTATOR),
                summary=summary,
                figures=figures,
                errors=errors[:1000],
                source=job.params.get("folder") or "upload",
                import_job=job,
            )
    except BaseException:
        default_storage.delete(stored)  # nothing half-imported: no row, no orphan cache
        raise
    job.add_log(f"Stored {version}: {len(data)} images, {len(errors)} invalid entries")
    return {
        "dataset": dataset.pk,
        "dataset_version": version.pk,
        "images": len(data),
        "invalid": len(errors),
    }
