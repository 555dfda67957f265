"""Activities in Chromium at 1366 and 390 px: the uploader offers the classroom's list and tags
the upload; the dashboard compares activities pooled across lessons and its headline says how
many more faces the latest comparison needs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics import services
from analytics.models import Photo, Session
from classifier.services import set_calibration
from tests.analytics.conftest import (
    add_faces,
    calibration,
    image_bytes,
    make_classroom,
    make_user,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1366, 390])
def test_tag_an_upload_and_compare_activities_on_the_dashboard(
    live_server, model_version, out_dir, page, tmp_path, settings, width
):
    from playwright.sync_api import expect

    settings.MEDIA_ROOT = tmp_path / "media"
    teacher = make_user("teacher")
    classroom = make_classroom(teacher)
    set_calibration(model_version, calibration(0))
    start = timezone.now() - timedelta(days=10)
    sessions = []
    for day in range(3):
        session = Session.objects.create(
            classroom=classroom, title=f"Day {day}", started_at=start + timedelta(days=day)
        )
        for activity, engaged, bored in (("group work", 18, 12), ("direct teaching", 9, 21)):
            photo = add_faces(session, model_version, ["Engaged"] * engaged + ["Bored"] * bored)
            photo.activity = activity
            photo.save()
        services.quantify_session(session.pk)
        sessions.append(session)
    photo_file = tmp_path / "quiz.jpg"
    photo_file.write_bytes(image_bytes(seed=5))

    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/sessions/{sessions[-1].pk}/")
    page.fill("#id_username", "teacher")
    page.fill("#id_password", "pw-for-tests-1")
    page.click("button[type=submit]")
    options = page.locator("#activity option")
    expect(options).to_have_count(7)  # "not tagged" and the six defaults
    page.select_option("#activity", "quiz")
    page.locator("#upload").screenshot(path=out_dir / "1-uploader-activity.png")
    page.set_input_files("#file-input", str(photo_file))
    expect(page.locator("#uploads li[data-outcome]")).to_have_count(1)
    assert Photo.objects.get(original_name="quiz.jpg").activity == "quiz"

    page.goto(f"{live_server.url}/classrooms/{classroom.pk}/dashboard/")
    comparison = page.locator("#activities .activity-comparisons li")
    expect(comparison).to_have_count(1)
    expect(comparison).to_contain_text("Group work: engagement 30 points above direct teaching")
    expect(comparison).to_contain_text("3 lessons, 90 faces: beyond doubt")
    expect(page.locator("#headline-meter")).to_contain_text("Not yet conclusive")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.locator("#activities").screenshot(path=out_dir / "2-dashboard-activities.png")
    page.locator("#headline-change").screenshot(path=out_dir / "3-headline-meter.png")
