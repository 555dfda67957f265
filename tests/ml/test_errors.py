"""Messages recorded for readers keep no server paths (job errors for admins, photo errors for
teachers: Job.failure_reason and Photo.failure_reason use this)."""

import pytest

from ml.errors import without_server_paths


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "DataError: attributes CSV '/tmp/edumood-import-x1/attributes.csv' has 101 columns",
            "DataError: attributes CSV 'attributes.csv' has 101 columns",
        ),
        (
            "[Errno 2] No such file or directory: '/srv/edumood/var/media/datasets/a.zip'",
            "[Errno 2] No such file or directory: 'a.zip'",
        ),
        ("broker redis://10.0.0.5:6379/0 is down", "broker redis://10.0.0.5:6379/0 is down"),
        ("3/4 folds done at 50 MB/s", "3/4 folds done at 50 MB/s"),
    ],
)
def test_absolute_paths_are_cut_to_their_last_part(message, shown):
    assert without_server_paths(message) == shown
