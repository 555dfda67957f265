"""The session page's uploader in Chromium: batches, throttled requests retried, honest outcomes."""

from datetime import date

import pytest
from django.contrib.auth import get_user_model

from analytics.models import Classroom, Consent, Photo, Session
from tests.analytics.conftest import image_bytes
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
    assert "not an image file" in notes
    stored = Photo.objects.filter(session=session)
    assert sorted(stored.values_list("original_name", flat=True)) == [f.name for f in files[:7]]
