"""Site-wide page details: styled error pages, the favicon, the log-out message, dates."""

from datetime import datetime

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db


@pytest.fixture
def teacher_web(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ada", password="a-Long-pass-1"))
    return client


def test_404_and_403_are_site_pages_with_a_way_back(teacher_web, settings):
    settings.DEBUG = False  # Django's own debug pages otherwise
    missing = teacher_web.get("/classrooms/987654/")
    text = missing.content.decode()
    assert missing.status_code == 404 and 'id="error-page"' in text
    assert "Page not found" in text and "/classrooms/987654/" in text
    assert 'aria-label="Main"' in text and "css/app.css" in text  # the site's layout and nav
    denied = teacher_web.get(reverse("classifier:models"))
    text = denied.content.decode()
    assert denied.status_code == 403 and 'id="error-page"' in text
    assert "Admins only." in text and "for EduMood's admins" in text
    assert teacher_web.get("/api/classrooms/987654/").json() == {
        "detail": "No Classroom matches the given query."
    }


def test_a_server_error_and_an_expired_form_are_site_pages_without_details(settings):
    settings.DEBUG = False
    settings.ROOT_URLCONF = "tests.failing_urls"
    failed = Client(raise_request_exception=False).get("/fail/")
    text = failed.content.decode()
    assert failed.status_code == 500 and 'id="error-page"' in text and "css/app.css" in text
    assert "Something went wrong" in text
    assert "boom" not in text and "secret_module" not in text and "Traceback" not in text
    expired = Client(enforce_csrf_checks=True).post(reverse("login"), {"username": "a"})
    text = expired.content.decode()
    assert expired.status_code == 403 and 'id="error-page"' in text
    assert "This form has expired" in text and "CSRF" not in text


def test_every_page_links_the_favicon_and_it_is_served(teacher_web):
    page = teacher_web.get(reverse("home")).content.decode()
    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in page
    assert finders.find("img/favicon.svg")


def test_logging_out_says_so_on_the_log_in_page(teacher_web):
    page = teacher_web.post(reverse("logout"), follow=True)
    assert page.request["PATH_INFO"] == reverse("login")
    assert b"You are logged out." in page.content
    assert b"You are logged out." not in teacher_web.get(reverse("login")).content  # once


def test_pages_write_dates_in_the_one_site_format(teacher_web, django_user_model):
    from analytics.models import Classroom, Session

    classroom = Classroom.objects.create(owner=django_user_model.objects.get(), name="7B")
    started = timezone.make_aware(datetime(2024, 10, 1, 9, 5))
    session = Session.objects.create(classroom=classroom, title="Fractions", started_at=started)
    for url in (
        reverse("analytics:classroom", args=[classroom.pk]),
        reverse("analytics:session", args=[session.pk]),
        reverse("analytics:report", args=[classroom.pk]),
    ):
        assert "1 Oct 2024, 09:05" in teacher_web.get(url).content.decode(), url


def test_pages_added_for_issue_15_allow_a_strict_content_security_policy(
    client, django_user_model, settings
):
    from analytics.models import Classroom, Photo, Session
    from classifier.models import ModelVersion
    from tests.strict_csp import assert_strict_csp_possible

    settings.DEBUG = False
    boss = django_user_model.objects.create_user("boss", password="a-Long-pass-1", is_staff=True)
    client.force_login(boss)
    version = ModelVersion.objects.create(
        name="m", arch="edu-vgg-s", classes=["a", "b"], state_mapping={}, normalisation="x",
        checkpoint="models/m.pt", checkpoint_sha256="m" * 64,
        metrics={"accuracy": 0.5, "confusion_matrix": [[5, 0], [5, 0]]},
    )  # fmt: skip
    classroom = Classroom.objects.create(owner=boss, name="7B", retention="keep")
    session = Session.objects.create(classroom=classroom, title="x")
    Photo.objects.create(session=session, status="done", image="photos/x.jpg")
    pages = {
        reverse("accounts:people"): 200,
        reverse("accounts:password"): 200,
        reverse("classifier:models"): 200,
        reverse("classifier:model-promote", args=[version.pk]): 200,
        reverse("analytics:session-reanalyse", args=[session.pk]): 200,
        "/no-such-page/": 404,
    }
    for url, status in pages.items():
        response = client.get(url)
        assert response.status_code == status, url
        assert_strict_csp_possible(response.content.decode(), url)
    confirm = client.post(
        reverse("analytics:retention", args=[classroom.pk]), {"retention": "delete"}
    )
    assert b'id="confirm"' in confirm.content
    assert_strict_csp_possible(confirm.content.decode(), "retention confirmation")


def test_wide_content_scrolls_in_one_wrapper_rule():
    """One rule lets a wide table or chart scroll sideways; every template uses its classes."""
    from pathlib import Path

    css = Path(finders.find("css/app.css")).read_text()
    rules = [line for line in css.splitlines() if "overflow-x: auto" in line]
    assert rules == [".table-wrap, .chart-scroll { overflow-x: auto; max-width: 100%; }"]
    templates = Path(__file__).resolve().parents[1] / "templates"
    for template in templates.rglob("*.html"):
        assert 'class="scroll"' not in template.read_text(), template
