"""edumood_site/storage.py behaves alike on local disk and in a bucket (a real S3 server)."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from edumood_site import storage


@pytest.fixture(params=["local", "s3"])
def kind(request, settings, tmp_path):
    if request.param == "s3":
        request.getfixturevalue("s3")
    else:
        settings.MEDIA_ROOT = tmp_path / "media"
    return request.param


def test_rename_walk_copies_and_ages_alike_on_disk_and_in_a_bucket(kind):
    assert list(storage.walk("photos")) == []  # nothing stored yet: no folder, no keys
    assert storage.modified_at("photos/1/2/gone.jpg") is None
    assert storage.rename("photos/1/2/gone.jpg.staging", "photos/1/2/gone.jpg") is False
    name = default_storage.save("photos/1/2/a.jpg.staging", ContentFile(b"photo"))
    assert storage.rename(name, "photos/1/2/a.jpg") is True
    assert storage.rename(name, "photos/1/2/a.jpg") is False  # a second mover finds nothing
    default_storage.save("photos/1/3/b.jpg", ContentFile(b"other"))
    assert sorted(storage.walk("photos")) == ["photos/1/2/a.jpg", "photos/1/3/b.jpg"]
    assert storage.modified_at("photos/1/2/a.jpg") > 0
    with storage.local_copy("photos/1/2/a.jpg") as path:
        assert path.read_bytes() == b"photo"
    assert (storage.local_path("photos/1/2/a.jpg") is None) == (kind == "s3")
    with pytest.raises(FileNotFoundError), storage.local_copy("photos/1/2/gone.jpg"):
        pass
