"""Photos stored in a private S3 bucket (EDUMOOD_STORAGE=s3) on a real S3 server over HTTP
(moto's, tests/s3.py): upload, analysis, the blurred copy served by the app, retention, the
orphan sweep. Nothing is written to local media (the `s3` fixture checks)."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from analytics import services
from analytics.choices import AccessAction, ImageState, Retention
from analytics.models import AccessRecord, Photo
from tests.analytics.conftest import image_bytes, make_user, upload

pytestmark = pytest.mark.django_db


def photo_keys(s3) -> list[str]:
    server, bucket = s3
    return server.keys(bucket, "photos/")


def test_the_bucket_is_private_and_any_url_of_it_is_signed_and_short_lived(s3):
    server, bucket = s3
    name = default_storage.save("photos/1/2/a.jpg", ContentFile(image_bytes()))
    grants = server.client().get_object_acl(Bucket=bucket, Key=name)["Grants"]
    groups = [grant["Grantee"].get("URI", "") for grant in grants]
    assert not [uri for uri in groups if uri.endswith(("AllUsers", "AuthenticatedUsers"))]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]  # the owner's alone
    url = default_storage.url(name)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url


def test_an_uploaded_photo_is_analysed_and_its_blurred_copy_served_from_the_bucket(
    s3, session, teacher, model_version, analyse, client
):
    (photo,) = analyse(session, upload("class.jpg", image_bytes(size=(320, 240), seed=3)))
    assert (photo.status, photo.image_state) == ("done", ImageState.BLURRED), photo.error
    # Only the blurred copy is stored: the original and its staging name are gone.
    assert photo_keys(s3) == [photo.image.name]
    server, bucket = s3
    stored = server.client().get_object(Bucket=bucket, Key=photo.image.name)["Body"].read()
    assert stored[:2] == b"\xff\xd8" and stored != image_bytes(size=(320, 240), seed=3)

    client.force_login(teacher)
    served = client.get(reverse("analytics:photo-image", args=[photo.pk]))
    assert served.status_code == 200 and served["Cache-Control"] == "private, no-store"
    assert b"".join(served.streaming_content) == stored
    assert AccessRecord.objects.filter(
        user=teacher, action=AccessAction.VIEWED_PHOTO, session=session
    ).exists()
    client.force_login(make_user("mallory"))
    assert client.get(reverse("analytics:photo-image", args=[photo.pk])).status_code == 404


def test_retention_deletes_the_objects_in_the_bucket(
    s3, session, model_version, analyse, django_capture_on_commit_callbacks
):
    classroom = session.classroom
    classroom.retention = Retention.KEEP
    classroom.save()
    kept = analyse(
        session, upload("a.jpg", image_bytes(seed=1)), upload("b.jpg", image_bytes(seed=2))
    )
    assert photo_keys(s3) == sorted(photo.image.name for photo in kept)
    # Tightening the classroom's setting has a worker delete the stored originals.
    with django_capture_on_commit_callbacks(execute=True):  # the task runs eagerly
        assert services.set_retention(classroom, Retention.DELETE) == 2
    assert photo_keys(s3) == []
    assert {p.image_state for p in Photo.objects.all()} == {ImageState.DELETED}
    # Deleting a session deletes its photos' objects once the deletion is committed.
    (another,) = analyse(session, upload("c.jpg", image_bytes(seed=4)))
    assert another.image_state == ImageState.DELETED and photo_keys(s3) == []
    classroom.retention = Retention.KEEP
    classroom.save()
    (last,) = analyse(session, upload("d.jpg", image_bytes(seed=5)))
    assert photo_keys(s3) == [last.image.name]
    with django_capture_on_commit_callbacks(execute=True):
        session.delete()
    assert photo_keys(s3) == []


def test_the_sweep_covers_the_bucket(s3, session, settings, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = tmp_path / "spool"
    # A committed upload whose process died before the rename: its object has the staging name.
    (committed,) = services.upload_photos(session, [upload("a.jpg", image_bytes(seed=1))]).photos
    assert photo_keys(s3) == [committed.image.name + ".staging"]
    orphan = default_storage.save(f"photos/{session.classroom_id}/999/0123.jpg", ContentFile(b"x"))
    assert services.sweep_upload_leftovers(grace_seconds=60) == 0  # uploads in flight are spared
    assert len(photo_keys(s3)) == 2
    assert services.sweep_upload_leftovers(grace_seconds=0) == 1  # the orphan
    assert photo_keys(s3) == [committed.image.name] and orphan not in photo_keys(s3)
    assert committed.image.open("rb").read() == image_bytes(seed=1)
