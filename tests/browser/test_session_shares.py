"""The session page in Chromium: corrected shares with 90 % ranges beside the raw ones, readable
whether or not they conclude, and the conclusion meter in words, kept current by the poller
while photos are analysed."""

import pytest

from analytics import services
from analytics.models import Photo, Session
from classifier.services import set_calibration
from ml.quantify import MIN_FACES
from tests.analytics.conftest import READ, add_faces, calibration, make_classroom, make_user
from tests.browser.conftest import launch_chromium
from tests.test_chip_contrast import contrast

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RGB = "node => getComputedStyle(node).color"


def _hex(css_rgb: str) -> str:
    return "#" + "".join(
        f"{int(c):02x}" for c in css_rgb[css_rgb.index("(") + 1 : -1].split(",")[:3]
    )


@pytest.mark.parametrize("width", [1366, 390])
def test_session_page_shows_corrected_shares_and_what_would_conclude(
    live_server, model_version, out_dir, orm_beside_playwright, width
):
    from playwright.sync_api import expect, sync_playwright

    teacher = make_user("teacher")
    classroom = make_classroom(teacher)
    set_calibration(model_version, calibration(bored_as_neutral=50))
    big = Session.objects.create(classroom=classroom, title="Big lesson")
    add_faces(big, model_version, READ * (MIN_FACES // len(READ)))
    small = Session.objects.create(classroom=classroom, title="Small lesson")
    lively = ["Engaged"] * 7 + ["Neutral"] * 3  # 70 % engaged against the big lesson's 20 %
    add_faces(small, model_version, lively)
    for session in (big, small):
        services.quantify_session(session.pk)
    # A photo still being analysed: the page keeps polling the session summary.
    waiting = Photo.objects.create(session=small, status="queued", original_name="late.jpg")

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.set_default_timeout(20_000)
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
        expect(page.locator("#conclusion")).to_contain_text(
            "Enough faces to compare with the next session: engagement 20% (90 % range"
        )
        expect(page.locator("#uncorrected")).to_be_hidden()
        page.locator("#summary").screenshot(path=out_dir / "1-corrected-shares.png")

        page.goto(f"{live_server.url}/sessions/{small.pk}/")
        meter = page.locator("#conclusion")
        expect(meter).to_contain_text("Not yet conclusive: engagement 70% (90 % range")
        expect(meter).to_contain_text("About 70 more faces (about 7 more photos at 10 faces")
        # The meter quotes the range the table shows.
        range_text = page.locator('[data-range="Engaged"]').inner_text()
        assert f"(90 % range {range_text})" in meter.inner_text()
        # Readable as any text: no greying, whether or not the numbers conclude.
        for cell in ('[data-corrected="Bored"]', '[data-range="Bored"]'):
            node = page.locator(cell)
            assert node.evaluate("node => getComputedStyle(node).opacity") == "1"
            assert contrast(_hex(node.evaluate(RGB)), "#ffffff") >= 4.5
        page.locator("#summary").screenshot(path=out_dir / "2-not-yet-conclusive.png")

        # The late photo is analysed: the poller brings the new numbers and the meter with them.
        add_faces(small, model_version, lively * 7)
        services.quantify_session(small.pk)
        waiting.status = "failed"
        waiting.save()
        expect(page.locator("[data-faces]")).to_have_text("80")
        expect(page.locator("#correction-method")).to_have_text("Method: PACC, 80 faces.")
        expect(meter).to_contain_text("Conclusive: engagement 70% (90 % range", timeout=30_000)
        expect(meter).to_contain_text("is up beyond doubt since “Big lesson”, 20% (14%–28%)")
        assert services.session_summary(small)["conclusion"] == meter.inner_text()
        page.locator("#summary").screenshot(path=out_dir / "3-after-the-upload.png")
        browser.close()
    assert errors == []
    assert services.classroom_trends(classroom)[-1]["change"] == "up"  # the rule agrees
