"""Issue 22 in Chromium at 1366 and 390 px: an admin compares versions and promotes a flagged one
on purpose, then the good one back; a teacher sees the warning, and a dashboard whose sessions
came from two models names both and corrects each with its own errors. Screenshots in
test-output/<test>/."""

import pytest
from django.contrib.auth import get_user_model

from tests.browser.test_people_and_registry import PASSWORD, log_in, log_out, model, shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CLASS_OF = {"Angry": "angry", "Engaged": "happy", "Bored": "sad", "Neutral": "neutral"}
ONE_CLASS = [[24, 0, 0, 0], [24, 0, 0, 0], [23, 0, 0, 1], [24, 0, 0, 0]]


def test_admin_compares_promotes_a_flagged_model_on_purpose_and_the_good_one_back(
    live_server, page, out_dir
):
    from playwright.sync_api import expect

    from classifier.models import ModelVersion

    get_user_model().objects.create_user("boss", password=PASSWORD, is_staff=True)
    good = model("EduMood default", 0.668, active=True)
    weaker = model("edu-vgg-s 8 epochs", 0.614)
    # The model: one class, scored on 24 faces a class of its own upload.
    flagged = model("2-epoch", 0.25, ONE_CLASS, reference=False)
    base = live_server.url
    log_in(page, base, "boss", PASSWORD)

    page.goto(f"{base}/models/")
    expect(page.locator(f"[data-flags='{flagged.pk}']")).to_contain_text("⚠ Predicts one class")
    expect(page.locator(f"[data-flags='{flagged.pk}']")).to_contain_text("Own split")
    shoot(page, out_dir, "1-registry")

    page.goto(f"{base}/models/compare/?ids={good.pk}&ids={weaker.pk}")
    accuracy = page.locator("#compare tr", has_text="Accuracy").first
    expect(accuracy.locator("td.better")).to_have_count(1)
    expect(accuracy.locator("td.better")).to_contain_text("0.668")
    expect(page.locator("#recall-chart .main-svg").first).to_be_visible()
    shoot(page, out_dir, "2-compare-ranked", fits="main")
    page.goto(f"{base}/models/compare/?ids={good.pk}&ids={flagged.pk}")
    expect(page.locator("#not-comparable")).to_be_visible()
    expect(page.locator("td.better")).to_have_count(0)
    shoot(page, out_dir, "3-compare-not-ranked", fits="main")

    page.goto(f"{base}/models/{flagged.pk}/promote/")
    expect(page.locator("#quality-flags")).to_contain_text("Predicts one class")
    expect(page.locator("#promote-compare")).not_to_contain_text("▼ worse")
    shoot(page, out_dir, "4-promote-flagged")
    page.click("#promote-form button[type=submit]")  # not ticked: the browser refuses
    assert not ModelVersion.objects.get(pk=flagged.pk).is_active
    page.check("#confirm-flags")
    page.click("#promote-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("is now the active model")

    page.goto(f"{base}/")
    expect(page.locator("#model-warning")).to_contain_text("2-epoch")
    shoot(page, out_dir, "5-home-warning", fits="#model-warning")

    page.goto(f"{base}/models/{good.pk}/promote/")
    expect(page.locator("#comparison-note")).to_contain_text("The active model is flagged")
    expect(page.locator("#worse-warning")).to_have_count(0)
    expect(page.locator("#promote-compare")).not_to_contain_text("▼ worse")
    shoot(page, out_dir, "6-promote-back")
    page.click("#promote-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("is now the active model")
    log_out(page)


def test_teacher_sees_the_warning_and_a_dashboard_corrected_per_model(live_server, page, out_dir):
    from datetime import timedelta

    from django.utils import timezone
    from playwright.sync_api import expect

    from analytics import services
    from analytics.models import Classroom, Consent, FaceResult, Photo, Session
    from classifier.services import set_calibration
    from tests.analytics.conftest import calibration

    teacher = get_user_model().objects.create_user("teacher", password=PASSWORD)
    good = model("EduMood default", 0.668, active=True)
    set_calibration(good, calibration(bored_as_neutral=50))
    flagged = model("2-epoch", 0.25, ONE_CLASS, reference=False, active=True)
    set_calibration(flagged, calibration(0))
    classroom = Classroom.objects.create(owner=teacher, name="8C History")
    Consent.objects.create(
        classroom=classroom, obtained_from="Parents", method="written",
        obtained_on=timezone.now().date(), recorded_by=teacher,
    )  # fmt: skip
    start = timezone.now() - timedelta(days=3)
    for day, (version, states) in enumerate(
        [
            (good, ["Engaged", "Neutral", "Neutral", "Bored", "Angry"] * 20),
            (flagged, ["Angry"] * 30),
        ]  # fmt: skip
    ):
        session = Session.objects.create(
            classroom=classroom, title=f"Lesson {day + 1}", started_at=start + timedelta(days=day)
        )
        photo = Photo.objects.create(session=session, status="done", model_version=version)
        for state in states:
            FaceResult.objects.create(
                photo=photo, x=0, y=0, w=10, h=10, score=0.9, label=CLASS_OF[state], state=state,
                probabilities={c: float(c == CLASS_OF[state]) for c in version.classes},
                model_version=version,
            )  # fmt: skip
        services.quantify_session(session.pk)
    base = live_server.url
    log_in(page, base, "teacher", PASSWORD)

    page.goto(f"{base}/sessions/{session.pk}/")
    warning = page.locator("#model-warning")
    expect(warning).to_contain_text("is flagged by its own measurements")
    expect(warning).to_contain_text("not a reliable signal")
    expect(page.locator("#estimate-note")).not_to_contain_text("%)")
    shoot(page, out_dir, "1-session-warning", fits="#model-warning")

    page.goto(f"{base}/classrooms/{classroom.pk}/dashboard/")
    versions = page.locator("#headline-versions")
    expect(versions).to_contain_text("EduMood default")
    expect(versions).to_contain_text("2-epoch")
    expect(page.locator("#headline")).to_contain_text("corrected (90 % range")
    shoot(page, out_dir, "2-dashboard-two-models", fits="#headline")
