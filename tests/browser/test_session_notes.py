"""Issue 23 item 3 in Chromium at 1366 and 390 px: a teacher writes a private note on a session
and finds it marked on the classroom trend and listed in the report."""

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics import services
from analytics.models import Session
from classifier.services import set_calibration
from tests.analytics.conftest import READ, add_faces, calibration, make_classroom, make_user
from tests.browser.test_people_and_registry import (  # noqa: F401 (fixtures)
    log_in,
    shoot,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_teacher_notes_a_session_and_finds_it_on_the_trend_and_in_the_report(
    live_server,
    page,  # noqa: F811 (the fixture imported above)
    model_version,
    out_dir,
):
    from playwright.sync_api import expect

    teacher = make_user("teacher")
    classroom = make_classroom(teacher)
    set_calibration(model_version, calibration())
    lessons = []
    for day, title in enumerate(["Monday", "Tuesday", "Wednesday"]):
        lesson = Session.objects.create(
            classroom=classroom, title=title, started_at=timezone.now() - timedelta(days=3 - day)
        )
        add_faces(lesson, model_version, READ * (day + 2))
        services.quantify_session(lesson.pk)
        lessons.append(lesson)
    base = live_server.url
    log_in(page, base, "teacher", "pw-for-tests-1")

    page.goto(f"{base}/sessions/{lessons[1].pk}/")
    page.fill("#note-form textarea", "Moved the quiz to the start")
    page.click("#note-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Note saved.")
    expect(page.locator("#note-form textarea")).to_have_value("Moved the quiz to the start")
    shoot(page, out_dir, "1-session-note", fits="#session-note")

    page.goto(f"{base}/classrooms/{classroom.pk}/dashboard/")
    expect(page.locator("#session-notes")).to_contain_text("Tuesday")
    expect(page.locator("#session-notes")).to_contain_text("Moved the quiz to the start")
    mark = page.locator("#chart-engagement text", has_text="✎1")
    expect(mark).to_have_count(1)
    page.locator("#chart-engagement").scroll_into_view_if_needed()
    page.locator("#chart-engagement").screenshot(path=out_dir / "2-trend-note-1366.png")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    page.locator("#chart-engagement").scroll_into_view_if_needed()
    expect(mark).to_have_count(1)
    page.locator("#chart-engagement").screenshot(path=out_dir / "2-trend-note-390.png")
    page.set_viewport_size({"width": 1366, "height": 768})

    page.goto(f"{base}/classrooms/{classroom.pk}/report/")
    expect(page.locator("#session-notes")).to_contain_text("Moved the quiz to the start")
    expect(page.locator("#report-engagement text", has_text="✎1")).to_have_count(1)
    shoot(page, out_dir, "3-report-note", fits="#session-notes")
