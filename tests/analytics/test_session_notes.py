"""Issue 23 item 3: a teacher's private note on a session, on the trend and in the report;
other teachers and admins who do not own the classroom never see it."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from analytics.choices import AccessAction
from analytics.models import AccessRecord, Session
from tests.analytics.conftest import add_results

pytestmark = pytest.mark.django_db
NOTE = "Moved the quiz to the start"


@pytest.fixture
def web(client, teacher):
    client.force_login(teacher)
    return client


def _figures(page) -> dict:
    html = page.content.decode()
    return json.loads(html.split('id="figures" type="application/json">')[1].split("</script")[0])


def test_a_teacher_notes_a_session_and_sees_it_on_the_trend_and_in_the_report(web, session):
    add_results(session, ["Engaged", "Bored"])
    second = Session.objects.create(classroom=session.classroom, title="Decimals")
    add_results(second, ["Engaged"])
    saved = web.post(reverse("analytics:session-note", args=[session.pk]), {"note": NOTE})
    assert saved.status_code == 302 and saved.url.endswith("#session-note")
    session.refresh_from_db()
    assert session.note == NOTE
    page = web.get(reverse("analytics:session", args=[session.pk]))
    assert NOTE in page.content.decode() and b'id="note-form"' in page.content

    dashboard = web.get(reverse("analytics:dashboard", args=[session.classroom.pk]))
    listed = dashboard.content.decode()
    assert 'id="session-notes"' in listed and "Fractions</strong>" in listed and NOTE in listed
    marks = [t for t in _figures(dashboard)["engagement"]["data"] if t["name"].startswith("Your")]
    assert len(marks) == 1 and marks[0]["text"] == ["✎1"] and marks[0]["customdata"] == [NOTE]
    assert marks[0]["x"][0].startswith("Fractions")  # at its session, not the other one

    report = web.get(reverse("analytics:report", args=[session.classroom.pk]))
    assert NOTE in report.content.decode()
    assert _figures(report)["engagement"]["data"][-1]["customdata"] == [NOTE]

    web.post(reverse("analytics:session-note", args=[session.pk]), {"note": ""})
    session.refresh_from_db()
    assert session.note == ""
    dashboard = web.get(reverse("analytics:dashboard", args=[session.classroom.pk]))
    assert b'id="session-notes"' not in dashboard.content


def test_a_note_too_long_is_refused_and_the_old_one_kept(web, session):
    session.note = NOTE
    session.save()
    page = web.post(
        reverse("analytics:session-note", args=[session.pk]), {"note": "x" * 301}, follow=True
    )
    assert b"at most 300 characters" in page.content
    session.refresh_from_db()
    assert session.note == NOTE


def test_other_teachers_and_admins_never_see_a_note(session, other_teacher):
    session.note = NOTE
    session.save()
    add_results(session, ["Engaged"])
    boss = get_user_model().objects.create_superuser("boss", password="a-Long-pass-123")
    classroom = session.classroom
    for user in (other_teacher, boss):
        client = Client()
        client.force_login(user)
        for url in (
            reverse("analytics:session", args=[session.pk]),
            reverse("analytics:dashboard", args=[classroom.pk]),
            reverse("analytics:report", args=[classroom.pk]),
        ):
            assert client.get(url).status_code == 404, (user, url)
        written = client.post(reverse("analytics:session-note", args=[session.pk]), {"note": "x"})
        assert written.status_code == 404
        api = APIClient()
        api.force_authenticate(user)
        assert api.get(f"/api/sessions/{session.pk}/").status_code == 404
        assert NOTE not in api.get("/api/sessions/").content.decode()
    # The Django admin shows staff the session but not what its teacher wrote.
    client = Client()
    client.force_login(boss)
    change = client.get(reverse("admin:analytics_session_change", args=[session.pk]))
    assert change.status_code == 200 and NOTE not in change.content.decode()
    session.refresh_from_db()
    assert session.note == NOTE
    assert not AccessRecord.objects.exclude(user=session.classroom.owner).exists()


def test_the_owner_reads_and_writes_a_note_through_the_api_and_the_read_is_logged(session, teacher):
    api = APIClient()
    api.force_authenticate(teacher)
    patched = api.patch(f"/api/sessions/{session.pk}/", {"note": NOTE}, format="json")
    assert patched.status_code == 200 and patched.json()["note"] == NOTE
    assert api.get(f"/api/sessions/{session.pk}/").json()["note"] == NOTE
    assert AccessRecord.objects.filter(
        user=teacher, action=AccessAction.VIEWED_SESSION, session=session
    ).exists()
    too_long = api.patch(f"/api/sessions/{session.pk}/", {"note": "x" * 301}, format="json")
    assert too_long.status_code == 400 and "note" in too_long.json()
