"""Issue 21 in Chromium: the session page draws its boxes on the protected copy where the
faces were, and the privacy receipt reads well on a laptop, a phone and on paper."""

import io
import re

import pytest
from django.core.files.base import ContentFile

from analytics import services
from analytics.models import FaceResult, Photo, Session
from tests.analytics.conftest import make_classroom, make_user
from tests.analytics.test_privacy_receipt import receipt_world
from tests.browser.conftest import launch_chromium
from tests.ml.gallery import draw_face, gallery_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"  # make_user's


def _login(page, base_url, username="alice"):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def _meeting_photo(teacher):
    """An online session whose photo, a 3x3 meeting with names, was analysed (two of its faces
    found) and then replaced by its protected copy, as the worker does."""
    classroom = make_classroom(teacher)
    session = Session.objects.create(classroom=classroom, title="Online", kind="online")
    faces = [draw_face(110, seed=i, margin=0) for i in range(8)]
    gallery = gallery_screenshot(faces, columns=3, rows=3, tile=(480, 270), empty=1, seed=2)
    buffer = io.BytesIO()
    gallery.image.save(buffer, "JPEG", quality=92)
    width, height = gallery.image.size
    photo = Photo.objects.create(session=session, status="done", width=width, height=height)
    photo.image.save("meeting.jpg", ContentFile(buffer.getvalue()))
    found = gallery.faces[:2]
    for x, y, w, h in found:
        FaceResult.objects.create(
            photo=photo, x=x, y=y, w=w, h=h, score=0.99, label="happy", state="Engaged",
            probabilities={"happy": 0.9, "sad": 0.1},
        )  # fmt: skip
    assert services.protect_stored_copy(photo) == 1
    return session, found, (width, height)


@pytest.mark.parametrize("width", [1366, 390])
def test_boxes_lie_on_the_faces_of_the_protected_copy(live_server, out_dir, width):
    from playwright.sync_api import sync_playwright

    session, found, (photo_w, photo_h) = _meeting_photo(make_user("alice"))
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": width, "height": 900})
        _login(page, live_server.url)
        page.goto(f"{live_server.url}/sessions/{session.pk}/")
        image = page.locator(".frame img").first
        image.scroll_into_view_if_needed()
        page.wait_for_function("() => document.querySelector('.frame img')?.naturalWidth > 0")
        frame = image.bounding_box()
        for i, (x, y, w, _) in enumerate(found):
            box = page.locator(f".face-box[data-face='{i}']").first.bounding_box()
            # Where the face is on the drawn copy, as a fraction of the picture, within 1 %.
            assert abs((box["x"] - frame["x"]) / frame["width"] - x / photo_w) < 0.01
            assert abs((box["y"] - frame["y"]) / frame["height"] - y / photo_h) < 0.01
            assert abs(box["width"] / frame["width"] - w / photo_w) < 0.01
        natural = page.evaluate("() => document.querySelector('.frame img').naturalWidth")
        page.locator(".photo").first.screenshot(path=out_dir / f"session-photo-{width}.png")
        browser.close()
    assert natural == 1280  # the stored copy, not the 1472 px original


def test_the_privacy_receipt_on_a_laptop_a_phone_and_paper(live_server, out_dir):
    from playwright.sync_api import expect, sync_playwright

    teacher = make_user("alice")
    classroom = receipt_world(teacher)["classroom"]
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        _login(page, live_server.url)
        page.goto(f"{live_server.url}/classrooms/{classroom.pk}/")
        page.click("text=Privacy receipt for parents")
        expect(page.locator("h1")).to_have_text("Privacy receipt: 7B Science")
        expect(page.locator("#access-summary tbody tr")).to_have_count(3)
        page.screenshot(path=out_dir / "receipt-1366.png", full_page=True)
        for width in (390, 1366):
            page.set_viewport_size({"width": width, "height": 844})
            page.screenshot(path=out_dir / f"receipt-{width}.png", full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{overflow} px wider than the {width} px window"
        page.emulate_media(media="print")
        page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        page.screenshot(path=out_dir / "receipt-printed.png", full_page=True)
        expect(page.locator(".topbar")).to_be_hidden()
        expect(page.locator("[data-print]")).to_be_hidden()
        pdf = page.pdf(format="A4", path=out_dir / "receipt.pdf")
        pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
        browser.close()
    assert 1 <= pages <= 2, pages  # a hand-out: two A4 pages at most
    assert not errors, errors
