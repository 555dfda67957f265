"""Exceptions of the ml package: each message is one user-facing line."""

import re
from enum import StrEnum


class MLError(Exception):
    """Base class; the CLI prints the message on one line and exits with status 2."""


class DataError(MLError):
    """A dataset path, zip, CSV or class set that cannot be used."""


class UnsafeArchive(DataError):
    """A zip (or one of its entries) refused by ml.safety: a bomb, an unsafe path, encryption."""


class ImageProblem(StrEnum):
    """What is wrong with an image, for callers that word it for their own readers."""

    UNREADABLE = "unreadable"  # missing, a folder, no permission
    NOT_AN_IMAGE = "not_an_image"
    FORMAT = "format"  # an image, in a format the caller does not accept
    TOO_MANY_PIXELS = "too_many_pixels"  # over the pixel limit, or a decompression bomb
    PIXELS_PER_BYTE = "pixels_per_byte"  # far more pixels than its bytes can hold: built to cost
    CORRUPT = "corrupt"  # damaged or truncated data
    OTHER = "other"


class InvalidImage(MLError):
    """A corrupt file, a non-image, a decompression bomb or an image that is too large."""

    def __init__(self, message: str, problem: ImageProblem = ImageProblem.OTHER):
        super().__init__(message)
        self.problem = problem


class CheckpointError(MLError):
    """A checkpoint that is missing, unreadable or inconsistent with the data."""


# An absolute POSIX path of at least a folder and a name, not the tail of a URL or a fraction.
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s'\"/:;,()<>\[\]]+)+/([^\s'\"/:;,()<>\[\]]+)")


def without_server_paths(text: str) -> str:
    """The message with each absolute path cut to its last part ('/tmp/x/attributes.csv' ->
    'attributes.csv'): exception texts name server folders, which their readers (admins,
    teachers) do not need and an attacker would like."""
    return _SERVER_PATH.sub(r"\1", text)
