"""The teacher journey in Chromium: classroom, consent, session, upload, results, dashboard."""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.browser.conftest import launch_chromium
from tests.photos import DRAWN_FACES, drawn_group_photo

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _photos(request, tmp_path) -> tuple[list[Path], int | None]:
    """Two real group photos when the shared data is here, else two photos of drawn faces;
    with the number of faces the page must show (None: at least two, for the real ones)."""
    try:
        folder = request.getfixturevalue("data_dir") / "group-photos" / "images"
        return sorted(folder.glob("*Students_Schoolkids*.jpg"))[:2], None
    except pytest.skip.Exception:
        paths = []
        for seed in (1, 2):
            paths.append(tmp_path / f"drawn-{seed}.jpg")
            drawn_group_photo(seed).save(paths[-1], quality=92)
        return paths, 2 * DRAWN_FACES


def test_teacher_uploads_photos_and_sees_results_and_dashboard(
    request, live_server, model_version, worker_factory, settings, monkeypatch, tmp_path, out_dir
):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("MEDIA_ROOT", str(settings.MEDIA_ROOT))  # the worker reads the same files
    photos, faces = _photos(request, tmp_path)
    worker_factory()
    get_user_model().objects.create_user("teacher", password="a-long-test-password")

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda error: print("page error:", error))
        page.set_default_timeout(20_000)
        page.goto(f"{live_server.url}/classrooms/")
        page.fill("#id_username", "teacher")
        page.fill("#id_password", "a-long-test-password")
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("My classrooms")

        page.fill("#classroom-form #id_name", "7B Science")
        page.fill("#classroom-form #id_subject", "Science")
        page.check("#classroom-form input[value=blur]")
        page.click("#classroom-form button[type=submit]")
        expect(page.locator("#consent-missing")).to_be_visible()
        page.screenshot(path=out_dir / "1-classroom-without-consent.png", full_page=True)

        page.fill("#consent-form #id_obtained_from", "Parents/guardians of all 26 students")
        page.select_option("#consent-form #id_method", "written")
        page.fill("#consent-form #id_obtained_on", "2024-09-02")
        page.fill("#consent-form #id_notes", "Signed forms kept in the school office")
        page.click("#consent-form button[type=submit]")
        expect(page.locator("#consent")).to_contain_text("Parents/guardians of all 26 students")

        page.fill("#session-form #id_title", "Group experiment")
        page.select_option("#session-form #id_kind", "in_person")
        page.click("#session-form button[type=submit]")
        expect(page.locator("h1")).to_have_text("Group experiment")

        page.set_input_files("#file-input", [str(path) for path in photos])
        expect(page.locator("#uploads li")).to_have_count(2)
        expect(page.locator("#uploads")).not_to_contain_text("uploading", timeout=30_000)
        expect(page.locator("#uploads .error")).to_have_count(0)
        page.screenshot(path=out_dir / "2-uploading.png", full_page=True)
        # Status updates arrive by polling: no reload between upload and results.
        expect(page.locator("[data-status=done]")).to_have_count(2, timeout=120_000)
        boxes = page.locator(".face-box").count()
        assert boxes == faces if faces is not None else boxes >= 2
        expect(page.locator("[data-faces]")).to_have_text(str(boxes))
        # The test model has no calibration: the page says so once its faces are in, live.
        expect(page.locator("#uncorrected")).to_contain_text("no measured error rates")
        expect(page.locator("#estimate-note")).to_contain_text("25.0%")
        expect(page.locator("#definition")).to_contain_text("share of detected faces")
        page.screenshot(path=out_dir / "3-session-results.png", full_page=True)

        page.click("text=Classroom dashboard")
        # Charts wait for plotly.js (its basic bundle here), parsed after the page shows.
        chart = page.locator("#chart-engagement .main-svg").first
        expect(chart).to_be_visible(timeout=30_000)
        assert page.locator("#chart-distribution .bars .point").count() >= 1
        page.screenshot(path=out_dir / "4-dashboard.png", full_page=True)
        page.click("text=Printable report")
        expect(page.locator("#report-table")).to_contain_text("Group experiment")
        page.screenshot(path=out_dir / "5-report.png", full_page=True)
        browser.close()
