"""Issue 23 item 4 in Chromium at 1366 and 390 px: numbered boxes whose detail opens beside the
box (a sheet on a phone), the state first with the expressions under "details", a lightbox,
upload rows that follow each photo to done or failed, and a duplicate photo named."""

import pytest
from django.contrib.auth import get_user_model

from analytics import services
from analytics.models import FaceResult, Photo, Session
from classifier.models import ModelVersion
from tests.analytics.conftest import image_bytes, make_classroom, upload
from tests.browser.test_people_and_registry import (
    LAPTOP,
    PASSWORD,
    PHONE,
    log_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HAPPY = {"angry": 0.02, "disgust": 0.01, "fear": 0.02, "happy": 0.8, "neutral": 0.1, "sad": 0.03,
         "surprise": 0.02}  # fmt: skip
SAD = {"angry": 0.05, "disgust": 0.02, "fear": 0.13, "happy": 0.1, "neutral": 0.25, "sad": 0.4,
       "surprise": 0.05}  # fmt: skip


def test_face_popover_sheet_and_lightbox(
    live_server,
    page,  # noqa: F811 (the fixture imported above)
    model_version,
    out_dir,
    settings,
    tmp_path,
):
    from playwright.sync_api import expect

    settings.MEDIA_ROOT = tmp_path / "media"
    teacher = get_user_model().objects.create_user("teacher", password=PASSWORD)
    lesson = Session.objects.create(classroom=make_classroom(teacher), title="Fractions")
    (photo,) = services.upload_photos(
        lesson, [upload("class.jpg", image_bytes(size=(640, 360), seed=4))]
    ).photos
    for i, (state, label, probabilities) in enumerate(
        (("Engaged", "happy", HAPPY), ("Bored", "sad", SAD))
    ):
        FaceResult.objects.create(
            photo=photo, x=60 + 380 * i, y=80, w=120, h=120, score=0.99, label=label,
            state=state, probabilities=probabilities, model_version=model_version,
        )  # fmt: skip
    Photo.objects.filter(pk=photo.pk).update(status="done", model_version=model_version)
    log_in(page, live_server.url, "teacher", PASSWORD)
    page.goto(f"{live_server.url}/sessions/{lesson.pk}/")

    expect(page.locator(".face-number")).to_have_text(["1", "2"])
    box = page.locator(".face-box[data-face='1']")
    box.scroll_into_view_if_needed()
    box.click()
    detail = page.locator("[data-face-detail='1']")
    expect(detail).to_contain_text("Face 2: Bored (from a sad-looking expression), 53%")
    expect(detail.locator(":scope > ul.probabilities li")).to_have_count(4)  # the states
    expressions = detail.locator("details .probabilities li")
    expect(expressions).to_have_count(7)
    expect(expressions.first).to_be_hidden()  # under the closed "details"
    detail.locator("summary").click()
    expect(expressions.first).to_be_visible()
    # The popover sits beside its box: box 2 is on the right, so the detail opens to its left,
    # from the box's top down, or (taller than the room under this short photo, as here) from
    # its bottom up, never over the footer.
    popover, bounds = page.locator(".face-popover").bounding_box(), box.bounding_box()
    assert abs(popover["x"] + popover["width"] - bounds["x"]) < 12, (popover, bounds)
    bottom = popover["y"] + popover["height"]
    assert abs(bottom - (bounds["y"] + bounds["height"])) < 12, (popover, bounds)
    assert (
        bottom
        <= page.locator("main").bounding_box()["y"] + page.locator("main").bounding_box()["height"]
    )
    page.screenshot(path=out_dir / "1-face-popover-1366.png", full_page=True)

    page.set_viewport_size(PHONE)
    page.locator(".face-box[data-face='0']").click()
    sheet = page.locator(".face-popover")
    expect(sheet).to_contain_text("Engaged (from a happy-looking expression), 82%")
    sheet_box = sheet.bounding_box()
    assert sheet_box["x"] == 0 and sheet_box["width"] == PHONE["width"]
    assert abs(sheet_box["y"] + sheet_box["height"] - PHONE["height"]) < 2  # along the bottom
    page.screenshot(path=out_dir / "2-face-sheet-390.png")
    sheet.locator("button.close").click()
    expect(sheet).to_be_hidden()

    frame = page.locator(".frame").first
    frame.click(position={"x": 5, "y": 5})  # away from the boxes
    lightbox = page.locator("#lightbox")
    expect(lightbox).to_be_visible()
    expect(lightbox.locator(".face-number")).to_have_count(2)
    assert lightbox.locator(".frame").bounding_box()["width"] > frame.bounding_box()["width"] - 40
    page.screenshot(path=out_dir / "3-lightbox-390.png")
    page.keyboard.press("Escape")
    expect(lightbox).to_be_hidden()
    page.set_viewport_size(LAPTOP)
    page.locator(".frame").first.click(position={"x": 5, "y": 5})
    expect(lightbox).to_be_visible()
    assert lightbox.locator(".frame").bounding_box()["width"] > 900  # larger than on the page
    page.screenshot(path=out_dir / "3-lightbox-1366.png")


@pytest.mark.parametrize("width", [1366, 390])
def test_upload_rows_follow_each_photo_to_done_or_failed_and_name_a_duplicate(
    live_server,
    page,  # noqa: F811 (the fixture imported above)
    model_version,
    eager_celery,
    out_dir,
    settings,
    tmp_path,
    width,
):
    from playwright.sync_api import expect

    settings.MEDIA_ROOT = tmp_path / "media"
    teacher = get_user_model().objects.create_user("teacher", password=PASSWORD)
    lesson = Session.objects.create(classroom=make_classroom(teacher), title="Fractions")
    for name, seed in (("first.jpg", 1), ("second.jpg", 2), ("copy of first.jpg", 1)):
        (tmp_path / name).write_bytes(image_bytes(size=(320, 240), seed=seed))
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, live_server.url, "teacher", PASSWORD)
    page.goto(f"{live_server.url}/sessions/{lesson.pk}/")

    ModelVersion.objects.update(is_active=False)  # no model: the analysis fails, with why
    page.set_input_files("#file-input", [str(tmp_path / "first.jpg")])
    first = page.locator('#uploads li[data-file="first.jpg"]')
    expect(first).to_have_attribute("data-analysis", "failed", timeout=30_000)
    expect(first.locator(".message-text")).to_contain_text("failed: ")
    reason = Photo.objects.get(original_name="first.jpg").error
    expect(first.locator(".message-text")).to_contain_text(reason)
    bar = first.locator(".progress > span").evaluate("n => getComputedStyle(n).backgroundColor")
    assert bar == "rgb(180, 35, 24)", bar  # --danger: red, not the accent blue

    ModelVersion.objects.filter(pk=model_version.pk).update(is_active=True)
    page.set_input_files(
        "#file-input", [str(tmp_path / "second.jpg"), str(tmp_path / "copy of first.jpg")]
    )
    second = page.locator('#uploads li[data-file="second.jpg"]')
    expect(second).to_have_attribute("data-analysis", "done", timeout=60_000)
    expect(second.locator(".message-text")).to_contain_text("done, ")
    copy = page.locator('#uploads li[data-file="copy of first.jpg"]')
    expect(copy).to_have_attribute("data-outcome", "failed")
    expect(copy.locator(".errors-list")).to_have_text(
        "copy of first.jpg is the same photo as first.jpg, already in this session, so it was "
        "not stored or counted again."
    )
    assert lesson.photos.count() == 2
    page.locator("#uploads").scroll_into_view_if_needed()
    page.screenshot(path=out_dir / f"4-upload-rows-{width}.png", full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
