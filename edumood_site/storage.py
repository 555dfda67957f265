"""Stored files through Django's storage API, on local disk or in an S3-compatible bucket.

Photos, blurred copies, dataset archives and caches, and checkpoints are read and written only
through a storage (`default_storage`, STORAGES["default"] in the settings), never at a path
assumed to be shared: a worker on another host has its own disk. The ml library takes paths, so
this module is the one adapter between the two: `local_copy` gives the path of a stored file
(on local disk the file itself, else a scratch copy of the bucket's), `store` uploads what a
worker wrote, `WorkingCopy` is a file a long run rewrites and keeps stored as it goes. Scratch
copies live in the system's temporary folder and go when their block ends.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from django.core.files import File
from django.core.files.storage import default_storage


def _split(stored) -> tuple[str, object]:
    """(name, storage) of a FieldFile, or of a name in the default storage."""
    if isinstance(stored, str):
        return stored, default_storage
    return stored.name, stored.storage


def local_path(stored) -> Path | None:
    """The stored file's own path where the storage is on this machine's disk, else None."""
    name, storage = _split(stored)
    try:
        return Path(storage.path(name))
    except NotImplementedError:  # a bucket has no paths
        return None


@contextmanager
def local_copy(stored) -> Iterator[Path]:
    """A path to read a stored file (a FieldFile, or a name in the default storage) from.

    On local disk, the file itself; from a bucket, a scratch copy removed when the block ends.
    FileNotFoundError when nothing is stored under the name.
    """
    path = local_path(stored)
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(path.name)
        yield path
        return
    name, storage = _split(stored)
    with tempfile.TemporaryDirectory(prefix="edumood-") as scratch:
        path = Path(scratch) / PurePosixPath(name).name
        with storage.open(name, "rb") as source, path.open("wb") as target:
            shutil.copyfileobj(source, target, 1024 * 1024)
        yield path


def store(path: Path, name: str) -> str:
    """Store a local file under `name` in the default storage; returns the name it got."""
    with open(path, "rb") as handle:
        return default_storage.save(name, File(handle, name=PurePosixPath(name).name))


def rename(old: str, new: str) -> bool:
    """Move a stored file to a new name; False when nothing is stored at `old` (moved already).

    On local disk an atomic rename; in a bucket a copy inside the bucket, then the delete (a
    second mover copies the same bytes again or finds nothing: either way one file results).
    """
    path = local_path(old)
    if path is not None:
        try:
            os.replace(path, default_storage.path(new))
        except FileNotFoundError:
            return False
        return True
    bucket = default_storage.bucket_name
    try:
        default_storage.connection.meta.client.copy_object(
            Bucket=bucket, Key=new, CopySource={"Bucket": bucket, "Key": old}
        )
    except Exception as error:
        if _not_found(error):
            return False
        raise
    default_storage.delete(old)
    return True


def modified_at(name: str) -> float | None:
    """When a stored file was last written (a Unix time); None when nothing is stored there."""
    try:
        return default_storage.get_modified_time(name).timestamp()
    except Exception as error:
        if _not_found(error):
            return None
        raise


def _not_found(error: Exception) -> bool:
    """Whether an error of a storage says the file is not there: FileNotFoundError on disk, an
    HTTP 404 from a bucket (boto3's ClientError, which the S3 storage passes on for some calls)."""
    if isinstance(error, FileNotFoundError):
        return True
    response = getattr(error, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404


def walk(folder: str) -> Iterator[str]:
    """The names of every file stored under a folder of the default storage, at any depth."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:  # local disk: no such folder yet (a bucket lists nothing)
        return
    for name in files:
        yield f"{folder}/{name}"
    for sub in folders:
        yield from walk(f"{folder}/{sub}")


class WorkingCopy:
    """A stored file that a long run reads at its start and rewrites as it goes (a training
    run's resume checkpoint), used as `with WorkingCopy(name) as path:`.

    On local disk `path` is the stored file itself. With a bucket it is a scratch file, filled
    from the bucket when something is stored there, and `sync()` uploads each new version of
    it; so a run taken over by a worker on another host resumes where the dead one stopped.
    """

    def __init__(self, name: str):
        self.name = name
        self.path: Path | None = local_path(name)
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._synced: float | None = None

    def __enter__(self) -> Path:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self.path
        self._scratch = tempfile.TemporaryDirectory(prefix="edumood-")
        self.path = Path(self._scratch.name) / PurePosixPath(self.name).name
        try:
            with default_storage.open(self.name, "rb") as source, self.path.open("wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            self._synced = self.path.stat().st_mtime
        except FileNotFoundError:
            self.path.unlink(missing_ok=True)
        return self.path

    def sync(self) -> None:
        """Upload the scratch file if it changed since the last upload (a bucket only)."""
        if self._scratch is None or not self.path.is_file():
            return
        modified = self.path.stat().st_mtime
        if modified != self._synced:
            store(self.path, self.name)
            self._synced = modified

    def discard(self) -> None:
        """Remove the stored file: the run that needed it is over."""
        default_storage.delete(self.name)

    def __exit__(self, *exc) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
