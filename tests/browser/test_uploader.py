"""The session page's uploader in Chromium: batches, throttled requests retried, honest outcomes."""

from datetime import date

import pytest
from django.contrib.auth import get_user_model

from analytics.models import Classroom, Consent, Photo, Session
from tests.analytics.conftest import image_bytes, zip_bytes
from tests.browser.conftest import launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_every_photo_is_stored_through_the_throttle_and_only_stored_ones_say_so(
    live_server, celery_broker, settings, tmp_path
):
    from playwright.sync_api import expect, sync_playwright

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EDUMOOD_MAX_FILES_PER_BATCH = 2  # 8 files: 4 batches, each small and quick
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                   "uploads": "1/s"},
    }  # fmt: skip
    teacher = get_user_model().objects.create_user("teacher", password="a-long-test-password")
    classroom = Classroom.objects.create(owner=teacher, name="6A")
    Consent.objects.create(
        classroom=classroom, obtained_from="parents", method="written", obtained_on=date(2026, 1, 5)
    )
    session = Session.objects.create(classroom=classroom, title="Reading")
    files = []
    for seed in range(7):
        files.append(tmp_path / f"photo-{seed}.jpg")
        files[-1].write_bytes(image_bytes(seed=seed))
    files.append(tmp_path / "notes.txt")
    files[-1].write_text("not a photo")

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.set_default_timeout(20_000)
        statuses = []
        page.on("response", lambda r: "/photos/" in r.url and statuses.append(r.status))
        page.goto(f"{live_server.url}/sessions/{session.pk}/")
        page.fill("#id_username", "teacher")
        page.fill("#id_password", "a-long-test-password")
        page.click("button[type=submit]")
        page.set_input_files("#file-input", [str(path) for path in files])
        rows = page.locator("#uploads li")
        expect(rows).to_have_count(8)
        expect(page.locator("#uploads li[data-outcome]")).to_have_count(8, timeout=60_000)
        outcomes = {
            rows.nth(i).get_attribute("data-file"): rows.nth(i).get_attribute("data-outcome")
            for i in range(8)
        }
        notes = page.locator('#uploads li[data-file="notes.txt"]').inner_text()
        browser.close()
    assert 429 in statuses, "the throttle was never hit: nothing was tested"
    assert outcomes == {**{f.name: "stored" for f in files[:7]}, "notes.txt": "failed"}
    assert "notes.txt is not a photo we can read: use JPEG, PNG, WebP or BMP." in notes
    stored = Photo.objects.filter(session=session)
    assert sorted(stored.values_list("original_name", flat=True)) == [f.name for f in files[:7]]


@pytest.mark.parametrize("width", [1366, 390])
def test_refused_files_are_listed_in_plain_words_and_the_good_ones_kept(
    live_server, celery_broker, settings, tmp_path, out_dir, width
):
    from playwright.sync_api import expect, sync_playwright

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EDUMOOD_MAX_FILES_PER_BATCH = 3
    teacher = get_user_model().objects.create_user("teacher", password="a-long-test-password")
    classroom = Classroom.objects.create(owner=teacher, name="6A")
    Consent.objects.create(
        classroom=classroom, obtained_from="parents", method="written", obtained_on=date(2026, 1, 5)
    )
    session = Session.objects.create(classroom=classroom, title="Reading")
    files = {
        "good.jpg": image_bytes(seed=1),
        "holiday.heic": b"\0\0\0\x18ftypheic" + b"\0" * 64,
        "cut.jpg": image_bytes(size=(200, 150))[:900],
        "class.zip": zip_bytes({f"{i}.jpg": image_bytes(seed=i) for i in range(4)}),
        "mixed.zip": zip_bytes({"in.jpg": image_bytes(seed=9), "readme.txt": b"notes"}),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.set_default_timeout(20_000)
        page.goto(f"{live_server.url}/sessions/{session.pk}/")
        page.fill("#id_username", "teacher")
        page.fill("#id_password", "a-long-test-password")
        page.click("button[type=submit]")
        page.set_input_files("#file-input", [str(tmp_path / name) for name in files])
        expect(page.locator("#uploads li[data-outcome]")).to_have_count(len(files), timeout=60_000)
        row = {name: page.locator(f'#uploads li[data-file="{name}"]') for name in files}
        outcomes = {name: row[name].get_attribute("data-outcome") for name in files}
        errors = {name: row[name].locator(".errors-list li").all_inner_texts() for name in files}
        # Each refusal is its own line under the file's row, as wide as the row.
        row_box = row["class.zip"].bounding_box()
        list_box = row["class.zip"].locator(".errors-list").bounding_box()
        line_height = row["good.jpg"].locator(".name").bounding_box()["height"]
        heic_height = row["holiday.heic"].locator(".errors-list li").bounding_box()["height"]
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        page.locator("#uploads").scroll_into_view_if_needed()
        page.screenshot(path=out_dir / f"upload-errors-{width}.png", full_page=True)
        browser.close()
    assert outcomes == {
        "good.jpg": "stored", "holiday.heic": "failed", "cut.jpg": "failed",
        "class.zip": "failed", "mixed.zip": "stored",
    }  # fmt: skip
    assert errors == {
        "good.jpg": [],
        "holiday.heic": ["holiday.heic is not a photo we can read: use JPEG, PNG, WebP or BMP."],
        "cut.jpg": [
            "cut.jpg is damaged or incomplete (perhaps it did not finish copying): check that it "
            "opens on your computer, then upload it again."
        ],
        "class.zip": [
            "class.zip holds 4 files, more than the 3 photos one upload takes, so nothing from "
            "it was stored: split it into zips of at most 3 photos."
        ],
        "mixed.zip": [
            "mixed.zip/readme.txt is not a photo we can read: use JPEG, PNG, WebP or BMP."
        ],
    }
    assert list_box["x"] - row_box["x"] < 30 and list_box["width"] > 0.8 * row_box["width"]
    if width > 1000:  # a short sentence is one line on a wide screen, not a narrow column
        assert heic_height < 1.5 * line_height, (heic_height, line_height)
    assert overflow <= 0, f"{overflow} px of horizontal scroll at {width} px"
    stored = Photo.objects.filter(session=session).values_list("original_name", flat=True)
    assert sorted(stored) == ["good.jpg", "mixed.zip/in.jpg"]


def test_photos_chosen_before_the_page_script_ran_are_uploaded(
    live_server, celery_broker, settings, tmp_path
):
    """On a slow connection a teacher can pick photos before the uploader's script has run."""
    from playwright.sync_api import expect, sync_playwright

    settings.MEDIA_ROOT = tmp_path / "media"
    teacher = get_user_model().objects.create_user("teacher", password="a-long-test-password")
    classroom = Classroom.objects.create(owner=teacher, name="6A")
    Consent.objects.create(
        classroom=classroom, obtained_from="parents", method="written", obtained_on=date(2026, 1, 5)
    )
    session = Session.objects.create(classroom=classroom, title="Reading")
    photo = tmp_path / "early.jpg"
    photo.write_bytes(image_bytes(seed=3))
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{live_server.url}/sessions/{session.pk}/")
        page.fill("#id_username", "teacher")
        page.fill("#id_password", "a-long-test-password")
        held = []  # the uploader's script, held back until the photo is chosen
        page.route("**/analytics.js", lambda route: held.append(route))
        page.click("button[type=submit]")
        page.set_input_files("#file-input", str(photo))
        expect(page.locator("#uploads li")).to_have_count(0)  # no script yet: nothing happens
        held[0].continue_()
        expect(page.locator("#uploads li[data-outcome]")).to_have_count(1, timeout=30_000)
        outcome = page.locator("#uploads li").get_attribute("data-outcome")
        browser.close()
    assert outcome == "stored"
    assert list(Photo.objects.values_list("original_name", flat=True)) == ["early.jpg"]
