"""Exceptions of the ml package: each message is one user-facing line."""


class MLError(Exception):
    """Base class; the CLI prints the message on one line and exits with status 2."""


class DataError(MLError):
    """A dataset path, zip, CSV or class set that cannot be used."""


class UnsafeArchive(DataError):
    """A zip (or one of its entries) refused by ml.safety: a bomb, an unsafe path, encryption."""


class InvalidImage(MLError):
    """A corrupt file, a non-image, a decompression bomb or an image that is too large."""


class CheckpointError(MLError):
    """A checkpoint that is missing, unreadable or inconsistent with the data."""
