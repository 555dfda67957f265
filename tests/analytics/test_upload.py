"""Upload validation: content sniffing, limits, zips, consent, and nothing stored half-way."""

import io
import struct
import zlib
from datetime import datetime

import pytest
from django.core.files.storage import FileSystemStorage
from PIL import Image

from analytics import services
from analytics.models import Photo, Session
from ml.safety import IMAGE_FORMATS
from tests.analytics.conftest import (
    image_bytes,
    make_classroom,
    stored_files,
    upload,
    zip_bytes,
)
from tests.ml.test_safety import flat_png

pytestmark = pytest.mark.django_db


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG declaring a huge size: decoding it would take width x height x 3 bytes."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return (
        b"\x89PNG\r\n\x1a\n"
        + header
        + _chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + (_chunk(b"IEND", b""))
    )


def _upload(session, *files):
    return services.upload_photos(session, list(files))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_each_accepted_format_is_stored_under_a_random_name(session, media_root, fmt):
    outcome = _upload(session, upload("Emma Smith.weird", image_bytes(fmt)))
    assert outcome.errors == []
    (photo,) = outcome.photos
    assert (photo.width, photo.height, photo.status) == (96, 72, "queued")
    assert photo.original_name == "Emma Smith.weird"
    assert "Emma" not in photo.image.name  # a file name may carry a student's name
    assert photo.image.name.endswith(IMAGE_FORMATS[fmt])
    assert len(stored_files(media_root)) == 1


def test_exif_capture_time_and_rotation_are_read(session):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:15:00"
    exif[0x0112] = 6  # rotated 90°: the stored photo is taller than wide once upright
    (photo,) = _upload(session, upload("a.jpg", image_bytes(exif=exif))).photos
    assert photo.captured_at.replace(tzinfo=None) == datetime(2024, 5, 1, 10, 15)
    assert (photo.width, photo.height) == (72, 96)


def _truncated_jpeg():
    data = image_bytes(size=(200, 150))
    return data[: len(data) // 2]


NOT_A_PHOTO = "is not a photo we can read: use JPEG, PNG, WebP or BMP."
TOO_MANY_PIXELS = "has more pixels than we accept (at most 50,000,000): make it smaller"
BAD_FILES = {
    "text renamed .jpg": ("notes.jpg", b"Dear parents, tomorrow we...\n" * 20, NOT_A_PHOTO),
    "HEIC (Pillow cannot read it)": (
        "holiday.heic",
        b"\0\0\0\x18ftypheic" + b"\0" * 64,
        NOT_A_PHOTO,
    ),
    "truncated JPEG": ("cut.jpg", _truncated_jpeg(), "is damaged or incomplete"),
    "decompression bomb": ("bomb.png", png_bomb(100_000, 100_000), TOO_MANY_PIXELS),
    "bomb under Pillow's limit": ("b.png", png_bomb(9000, 9000), TOO_MANY_PIXELS),
    "GIF": ("anim.gif", image_bytes("GIF"), NOT_A_PHOTO),
    "empty file": ("empty.jpg", b"", NOT_A_PHOTO),
    "broken zip": ("photos.zip", b"PK\x03\x04" + b"\0" * 100, "is not a zip we can open"),
    "empty zip": ("empty.zip", zip_bytes({"folder/": b""}), "holds no files."),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_gets_its_own_plain_error_and_the_good_file_is_kept(session, media_root, case):
    name, data, message = BAD_FILES[case]
    outcome = _upload(session, upload("good.jpg", image_bytes()), upload(name, data))
    assert [p.original_name for p in outcome.photos] == ["good.jpg"]
    assert len(outcome.errors) == 1
    assert outcome.errors[0]["file"] == name
    detail = outcome.errors[0]["detail"]
    # One sentence that names the file and says what is wrong, without Python's words for it.
    assert detail.startswith(f"{name} ") and message in detail, detail
    assert not any(word in detail for word in ("Error", "BytesIO", "<", "(b'", "errno"))
    assert len(stored_files(media_root)) == 1


def test_pixel_and_size_limits_come_from_settings(session, settings, media_root):
    settings.EDUMOOD_MAX_IMAGE_PIXELS = 5_000
    settings.EDUMOOD_MAX_UPLOAD_BYTES = 30_000
    outcome = _upload(
        session,
        upload("big.png", image_bytes("PNG", size=(100, 100))),  # 10,000 pixels, 30 kB
        upload("ok.png", image_bytes("PNG", size=(50, 50))),
    )
    assert [p.original_name for p in outcome.photos] == ["ok.png"]
    assert outcome.errors[0]["detail"] == (
        "big.png is 29 KB, over the limit of 29 KB per file: make it smaller and upload it again."
    )
    settings.EDUMOOD_MAX_UPLOAD_BYTES = 10**6
    outcome = _upload(session, upload("big.png", image_bytes("PNG", size=(100, 100))))
    assert outcome.photos == []
    assert "big.png has more pixels than we accept (at most 5,000)" in outcome.errors[0]["detail"]


def test_too_many_files_rejects_the_batch_and_stores_nothing(session, settings, media_root):
    settings.EDUMOOD_MAX_FILES_PER_BATCH = 2
    files = [upload(f"{i}.jpg", image_bytes(seed=i)) for i in range(3)]
    with pytest.raises(services.UploadError, match="3 files sent; one upload takes at most 2"):
        _upload(session, *files)
    assert not Photo.objects.exists()
    assert not (media_root / "photos").exists()


def test_no_consent_no_upload(teacher, media_root):
    classroom = make_classroom(teacher, consent=False)
    session = Session.objects.create(classroom=classroom, title="No consent")
    with pytest.raises(services.ConsentRequired, match="Record consent"):
        _upload(session, upload("a.jpg", image_bytes()))
    assert not Photo.objects.exists()


def test_zip_of_images_is_expanded_entry_by_entry(session, media_root):
    archive = zip_bytes(
        {
            "lesson/one.jpg": image_bytes(seed=1),
            "lesson/two.png": image_bytes("PNG", seed=2),
            "lesson/readme.txt": b"not a photo",
            "__MACOSX/lesson/._one.jpg": b"resource fork",
            "../../etc/evil.jpg": image_bytes(seed=3),
            "/abs/path.jpg": image_bytes(seed=4),
            "inner.zip": zip_bytes({"x.jpg": image_bytes(seed=5)}),
        }
    )
    outcome = _upload(session, upload("photos.zip", archive))
    assert sorted(p.original_name for p in outcome.photos) == [
        "photos.zip/lesson/one.jpg",
        "photos.zip/lesson/two.png",
    ]
    errors = {e["file"]: e["detail"] for e in outcome.errors}
    assert errors["photos.zip/lesson/readme.txt"] == f"photos.zip/lesson/readme.txt {NOT_A_PHOTO}"
    assert "evil.jpg was not stored: unsafe path" in errors["photos.zip/../../etc/evil.jpg"]
    assert "was not stored: unsafe path" in errors["photos.zip//abs/path.jpg"]
    assert errors["photos.zip/inner.zip"] == (
        "photos.zip/inner.zip was not stored: zips inside the zip are not accepted."
    )
    assert len(errors) == 4  # the macOS shadow file is skipped silently
    assert len(stored_files(media_root)) == 2
    assert all(".." not in name for name in stored_files(media_root))


def test_zip_bombs_are_refused(session, settings, media_root):
    bomb = zip_bytes({"zeros.jpg": b"\0" * (5 << 20), "fine.jpg": image_bytes()})
    outcome = _upload(session, upload("bomb.zip", bomb))
    assert [p.original_name for p in outcome.photos] == ["bomb.zip/fine.jpg"]
    assert "bomb.zip/zeros.jpg was not stored: compressed" in outcome.errors[0]["detail"]
    assert "(a zip bomb)" in outcome.errors[0]["detail"]


def test_a_zip_that_unpacks_over_the_limit_is_refused_whole(session, settings, media_root):
    settings.EDUMOOD_MAX_UPLOAD_BYTES = 1 << 20  # the whole archive expands past 4 x 1 MB
    flat = io.BytesIO()
    Image.new("RGB", (500, 500), "white").save(flat, "BMP")  # 0.7 MB each, compresses well
    many = zip_bytes({f"{i}.bmp": flat.getvalue() for i in range(6)})
    outcome = _upload(session, upload("many.zip", many), upload("own.jpg", image_bytes()))
    assert [p.original_name for p in outcome.photos] == ["own.jpg"]
    assert outcome.errors == [
        {
            "file": "many.zip",
            "detail": "many.zip unpacks to more than 4 MB, the limit for one zip, so nothing "
            "from it was stored: split it into smaller zips.",
        }
    ]
    assert len(stored_files(media_root)) == 1


def test_a_zip_with_more_photos_than_an_upload_takes_is_refused_whole(
    session, settings, media_root
):
    settings.EDUMOOD_MAX_FILES_PER_BATCH = 2
    archive = zip_bytes({f"{i}.jpg": image_bytes(seed=i) for i in range(3)})
    outcome = _upload(session, upload("three.zip", archive), upload("own.jpg", image_bytes()))
    assert [p.original_name for p in outcome.photos] == ["own.jpg"]  # nothing from the zip
    assert outcome.errors == [
        {
            "file": "three.zip",
            "detail": "three.zip holds 3 files, more than the 2 photos one upload takes, so "
            "nothing from it was stored: split it into zips of at most 2 photos.",
        }
    ]
    assert len(stored_files(media_root)) == 1


def test_a_zip_that_would_take_the_upload_over_its_photo_limit_is_refused_whole(session, settings):
    settings.EDUMOOD_MAX_FILES_PER_BATCH = 3
    first = zip_bytes({f"{i}.jpg": image_bytes(seed=i) for i in range(2)})
    second = zip_bytes({f"{i}.jpg": image_bytes(seed=i) for i in range(2, 4)})
    outcome = _upload(session, upload("a.zip", first), upload("b.zip", second))
    assert [p.original_name for p in outcome.photos] == ["a.zip/0.jpg", "a.zip/1.jpg"]
    assert [e["file"] for e in outcome.errors] == ["b.zip"]
    assert "this upload would hold more than 3 photos" in outcome.errors[0]["detail"]


def test_a_storage_failure_leaves_nothing_half_stored(session, media_root, monkeypatch):
    real_save = FileSystemStorage._save
    calls = []

    def failing_save(self, name, content):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_save(self, name, content)

    monkeypatch.setattr(FileSystemStorage, "_save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        _upload(session, upload("a.jpg", image_bytes(seed=1)), upload("b.jpg", image_bytes(seed=2)))
    assert not Photo.objects.exists()
    assert stored_files(media_root) == []


def test_the_sweep_finishes_committed_uploads_and_removes_files_without_a_row(
    session, media_root, settings, tmp_path
):
    settings.FILE_UPLOAD_TEMP_DIR = tmp_path / "spool"
    settings.FILE_UPLOAD_TEMP_DIR.mkdir()
    (spooled := settings.FILE_UPLOAD_TEMP_DIR / "tmpa1b2.upload.jpg").write_bytes(b"body")
    # Committed rows whose files were never renamed (the process died right after the commit).
    committed, other = _upload(
        session, upload("a.jpg", image_bytes(seed=1)), upload("b.jpg", image_bytes(seed=2))
    ).photos
    orphan = (media_root / committed.image.name).parent / "0123abcd.jpg"
    orphan.write_bytes(image_bytes())
    assert len(stored_files(media_root)) == 3
    assert services.sweep_upload_leftovers(grace_seconds=0) == 2  # the orphan and the spool
    assert not orphan.exists() and not spooled.exists()
    assert committed.image.open("rb").read() == image_bytes(seed=1)
    assert sorted(stored_files(media_root)) == sorted(
        p.image.name.removeprefix("photos/") for p in (committed, other)
    )
    orphan.write_bytes(image_bytes())  # as an upload in progress: spared by the grace period
    assert services.sweep_upload_leftovers(grace_seconds=60) == 0 and orphan.exists()


def test_a_photo_with_a_zip_appended_is_stored_as_the_photo(session, media_root):
    photo = image_bytes(seed=3)
    hidden = zip_bytes({"a.jpg": image_bytes(seed=4), "b.jpg": image_bytes(seed=5)})
    outcome = _upload(session, upload("holiday.jpg", photo + hidden))
    assert outcome.errors == []
    (stored,) = outcome.photos
    assert (stored.original_name, stored.width, stored.height) == ("holiday.jpg", 96, 72)


def test_pixel_amplification_is_refused_per_file_and_per_batch(session, settings, media_root):
    flat = io.BytesIO()
    Image.new("RGB", (2000, 1500), (200, 200, 200)).save(flat, "PNG")  # 3 MP in ~10 KB
    a = image_bytes(seed=9)  # not the 0.jpg below: the same photo twice would be stored once
    outcome = _upload(session, upload("flat.png", flat.getvalue()), upload("a.jpg", a))
    assert [p.original_name for p in outcome.photos] == ["a.jpg"]
    assert (
        "flat.png claims far more pixels than its file size allows" in outcome.errors[0]["detail"]
    )

    # Padding after IEND, which Pillow never reads, buys no pixels (the probe: 7000x7000 padded
    # to 562 KB, 20 of them in an 11 MB zip, cost 120 s of analysis).
    padded = flat_png(7000, 7000).ljust(562_000, b"\0")
    outcome = _upload(session, upload("class.zip", zip_bytes({"big.png": padded})))
    assert outcome.photos == []
    assert "big.png claims far more pixels than its file size allows" in outcome.errors[0]["detail"]

    settings.EDUMOOD_MAX_BATCH_PIXELS = 2 * 96 * 72  # two of the small photos
    files = [upload(f"{i}.jpg", image_bytes(seed=i)) for i in range(2)]
    files.append(upload("photos.zip", zip_bytes({"2.jpg": image_bytes(seed=2)})))
    files.append(upload("3.jpg", image_bytes(seed=3)))
    outcome = _upload(session, *files)
    assert [p.original_name for p in outcome.photos] == ["0.jpg", "1.jpg"]
    assert [e["file"] for e in outcome.errors] == ["photos.zip", "3.jpg"]  # a zip: whole
    assert "photos.zip holds more pixels than one upload may analyse" in outcome.errors[0]["detail"]
    assert "3.jpg was not stored: the photos of one upload" in outcome.errors[1]["detail"]


def test_the_same_photo_twice_in_a_session_is_stored_once_and_named_as_a_duplicate(
    session, media_root
):
    from analytics.models import Session

    first = _upload(session, upload("front row.jpg", image_bytes(seed=7)))
    assert first.errors == [] and len(first.photos) == 1
    again = _upload(
        session,
        upload("copy of front row.jpg", image_bytes(seed=7)),
        upload("back row.jpg", image_bytes(seed=8)),
        upload("back row again.jpg", image_bytes(seed=8)),
    )
    assert [p.original_name for p in again.photos] == ["back row.jpg"]
    assert again.errors == [
        {
            "file": "copy of front row.jpg",
            "detail": "copy of front row.jpg is the same photo as front row.jpg, already in this "
            "session, so it was not stored or counted again.",
            "duplicate_of": "front row.jpg",
        },
        {
            "file": "back row again.jpg",
            "detail": "back row again.jpg is the same photo as back row.jpg, already in this "
            "session, so it was not stored or counted again.",
            "duplicate_of": "back row.jpg",
        },
    ]
    assert session.photos.count() == 2
    # Another session may hold the same photo: only a session's own photos count twice.
    other = Session.objects.create(classroom=session.classroom, title="Another lesson")
    assert len(_upload(other, upload("front row.jpg", image_bytes(seed=7))).photos) == 1
