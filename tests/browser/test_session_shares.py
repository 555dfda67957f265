"""The session page in Chromium: corrected shares with 90 % ranges beside the raw ones, greyed
with "too few faces to conclude" below the minimum, and the sentence that explains them."""

import pytest

from analytics import services
from analytics.models import Session
from classifier.services import set_calibration
from ml.quantify import MIN_FACES
from tests.analytics.conftest import READ, add_faces, calibration, make_classroom, make_user
from tests.browser.conftest import launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_session_page_shows_corrected_shares_and_greys_a_small_session(
    live_server, model_version, out_dir
):
    from playwright.sync_api import expect, sync_playwright

    teacher = make_user("teacher")
    classroom = make_classroom(teacher)
    set_calibration(model_version, calibration(bored_as_neutral=50))
    big = Session.objects.create(classroom=classroom, title="Big lesson")
    add_faces(big, model_version, READ * (MIN_FACES // len(READ)))
    small = Session.objects.create(classroom=classroom, title="Small lesson")
    add_faces(small, model_version, READ)
    for session in (big, small):
        services.quantify_session(session.pk)

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        page.goto(f"{live_server.url}/classrooms/")
        page.fill("#id_username", "teacher")
        page.fill("#id_password", "pw-for-tests-1")
        page.click("button[type=submit]")

        page.goto(f"{live_server.url}/sessions/{big.pk}/")
        # Raw 20 % Bored (half of Bored read as Neutral) is corrected to 40 %.
        expect(page.locator('[data-share="Bored"]')).to_have_text("20%")
        expect(page.locator('[data-corrected="Bored"]')).to_have_text("40%")
        expect(page.locator('[data-range="Bored"]')).to_contain_text("–")
        expect(page.locator("#correction-note")).to_contain_text(
            "Corrected shares adjust the raw count of each state for the mistakes this model"
        )
        expect(page.locator("#few-faces")).to_be_hidden()
        expect(page.locator("#uncorrected")).to_be_hidden()
        expect(page.locator("#detection-mode")).to_contain_text("Fast")
        page.locator("#summary").screenshot(path=out_dir / "1-corrected-shares.png")

        page.goto(f"{live_server.url}/sessions/{small.pk}/")
        expect(page.locator("#few-faces")).to_be_visible()
        expect(page.locator("#few-faces")).to_contain_text("Too few faces to conclude")
        expect(page.locator("table.shares")).to_have_class("shares few-faces")
        opacity = page.locator('[data-corrected="Bored"]').evaluate(
            "node => getComputedStyle(node).opacity"
        )
        assert float(opacity) < 1
        page.locator("#summary").screenshot(path=out_dir / "2-too-few-faces.png")
        browser.close()
    assert errors == []
