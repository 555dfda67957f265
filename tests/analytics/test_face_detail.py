""" "Hide per-face detail" is a saved classroom setting: set on the classroom page or through the
API, it keeps every face's box, state and probabilities out of the session page, the exports and
the API's answers for that classroom, which then show class-level aggregates only."""

import csv
import io
import json

import pytest
from django.urls import reverse

from analytics import services
from analytics.charts import TIMELINE_MIN_FACES
from analytics.models import AccessRecord, Classroom
from tests.analytics.conftest import add_results, make_classroom

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(client, teacher):
    client.force_login(teacher)
    return client


@pytest.fixture
def photo(session):
    return add_results(session, ["Engaged", "Bored", "Engaged"])


def _hide(classroom, hidden=True):
    Classroom.objects.filter(pk=classroom.pk).update(hide_face_detail=hidden)


def test_the_setting_is_saved_from_the_classroom_page(web, classroom):
    page = web.get(reverse("analytics:classroom", args=[classroom.pk])).content.decode()
    assert 'id="face-detail"' in page and 'name="hide_face_detail"' in page
    url = reverse("analytics:face-detail", args=[classroom.pk])
    response = web.post(url, {"hide_face_detail": "on"}, follow=True)
    classroom.refresh_from_db()
    assert classroom.hide_face_detail
    assert "Per-face detail is now hidden" in response.content.decode()
    assert 'id="id_hide_face_detail" checked' in response.content.decode()
    web.post(url, {})  # an unticked box sends nothing
    classroom.refresh_from_db()
    assert not classroom.hide_face_detail


def test_a_new_classroom_can_hide_face_detail_from_the_start(web, teacher):
    page = web.get(reverse("analytics:classrooms")).content.decode()
    assert 'name="hide_face_detail"' in page
    data = {"name": "7B", "subject": "Maths", "retention": "blur"}
    web.post(reverse("analytics:classrooms"), data | {"hide_face_detail": "on"})
    web.post(reverse("analytics:classrooms"), data | {"name": "7C"})
    hidden = dict(teacher.classrooms.values_list("name", "hide_face_detail"))
    assert hidden == {"7B": True, "7C": False}


def test_another_teacher_cannot_change_the_setting(client, classroom, other_teacher):
    client.force_login(other_teacher)
    url = reverse("analytics:face-detail", args=[classroom.pk])
    assert client.post(url, {"hide_face_detail": "on"}).status_code == 404
    classroom.refresh_from_db()
    assert not classroom.hide_face_detail


def test_the_setting_is_a_field_of_the_api_classroom(api, classroom):
    url = f"/api/classrooms/{classroom.pk}/"
    assert api.get(url).data["hide_face_detail"] is False
    response = api.patch(url, {"hide_face_detail": True}, format="json")
    assert response.status_code == 200 and response.data["hide_face_detail"] is True
    classroom.refresh_from_db()
    assert classroom.hide_face_detail
    created = api.post("/api/classrooms/", {"name": "8A", "hide_face_detail": True}, format="json")
    assert created.status_code == 201 and created.data["hide_face_detail"] is True


def test_the_api_lists_faces_only_where_the_classroom_shows_them(api, teacher, session, photo):
    shown = make_classroom(teacher, name="Shown")
    other = add_results(shown.sessions.create(title="Open"), ["Neutral"])
    _hide(session.classroom)
    listed = {p["id"]: p for p in api.get("/api/photos/").data["results"]}
    assert listed[photo.pk]["faces"] is None and listed[photo.pk]["face_count"] == 3
    assert [f["state"] for f in listed[other.pk]["faces"]] == ["Neutral"]
    assert listed[other.pk]["face_count"] == 1
    one = api.get(f"/api/photos/{photo.pk}/").data
    assert one["faces"] is None and one["face_count"] == 3
    # The session's aggregates are what stays: they count every face, rounded (below).
    summary = api.get(f"/api/sessions/{session.pk}/").data["summary"]
    assert summary["faces"] == 3 and summary["counts_rounded"] is True


def test_the_session_page_shows_aggregates_only(web, session, photo):
    url = reverse("analytics:session", args=[session.pk])
    shown = web.get(url).content.decode()
    assert "CSV: faces of this session" in shown and '"probabilities"' in shown
    _hide(session.classroom)
    page = web.get(url).content.decode()
    assert 'id="face-detail-hidden"' in page
    assert "CSV: faces of this session" not in page and "Click or tap a box" not in page
    config = json.loads(page.split('id="session-config" type="application/json">')[1].split("<")[0])
    assert [(p["faces"], p["face_count"]) for p in config["photos"]] == [(None, 3)]
    assert '"probabilities"' not in page and "engaged" not in page  # no label, no probability
    classroom_page = web.get(reverse("analytics:classroom", args=[session.classroom_id]))
    assert "?rows=faces" not in classroom_page.content.decode()


def test_no_export_holds_a_face_of_a_hiding_classroom(api, web, session, photo):
    classroom = session.classroom
    assert api.get(f"/api/sessions/{session.pk}/export.csv").status_code == 200
    _hide(classroom)
    exported = AccessRecord.objects.filter(action="exported_csv").count()
    for url in (
        f"/api/sessions/{session.pk}/export.csv",
        f"/api/classrooms/{classroom.pk}/export.csv?rows=faces",
    ):
        response = api.get(url)
        assert response.status_code == 409, url
        assert "hides per-face detail" in json.loads(response.content)["detail"]
    # Refused exports are not logged as exports; the per-session aggregates still export.
    assert AccessRecord.objects.filter(action="exported_csv").count() == exported
    sessions = api.get(f"/api/classrooms/{classroom.pk}/export.csv")
    assert sessions.status_code == 200 and sessions.content.decode().count("\n") == 2
    report = web.get(reverse("analytics:report", args=[classroom.pk])).content.decode()
    assert "Per-face detail: hidden" in report and "probabilities" not in report


def test_the_dashboard_leaves_out_shares_photo_by_photo(web, classroom, session, photo):
    for _ in range(2):  # photos with enough faces for a timeline, whose shares are the faces'
        add_results(session, ["Bored"] * TIMELINE_MIN_FACES)
    url = reverse("analytics:dashboard", args=[classroom.pk])
    page = web.get(url).content.decode()
    assert 'data-figure="timeline"' in page and 'id="timeline-hidden"' not in page
    _hide(classroom)
    page = web.get(url).content.decode()
    assert 'data-figure="timeline"' not in page and 'id="timeline-session"' not in page
    assert 'id="timeline-hidden"' in page


def _summary_numbers(api, web, session) -> dict:
    """What each place that shows a session's counts shows of its Engaged faces."""
    classroom = session.classroom_id
    summary = api.get(f"/api/sessions/{session.pk}/").data["summary"]
    (listed,) = [s for s in api.get("/api/sessions/").data["results"] if s["id"] == session.pk]
    (trend,) = api.get(f"/api/classrooms/{classroom}/trends/").data
    rows = list(csv.DictReader(io.StringIO(api.get(f"/api/classrooms/{classroom}/export.csv")
                                           .content.decode())))  # fmt: skip
    page = web.get(reverse("analytics:session", args=[session.pk])).content.decode()
    report = web.get(reverse("analytics:report", args=[classroom])).content.decode()
    return {
        "api": (summary["counts"]["Engaged"], summary["shares"]["Engaged"]),
        "list": listed["summary"]["counts"]["Engaged"],
        "trends": (trend["counts"]["Engaged"], trend["engagement_index"]),
        "csv": (rows[0]["count_Engaged"], rows[0]["share_Engaged_pct"], rows[0]["counts_rounded"]),
        "page": page.split('data-count="Engaged">')[1].split("<")[0],
        # Cells after title, time, kind, photos, faces and index, in STATES order (Engaged 3rd).
        "report": report.split('id="report-table"')[1].split("<td>")[9].split(" ")[0],
        "notes": ('id="counts-rounded"' in page, 'id="counts-rounded"' in report),
    }


def test_hidden_detail_rounds_counts_so_one_more_photo_does_not_show_its_faces(api, web, session):
    """The probe: with exact counts, the summary before and after a one-face photo tells that
    face's state. Hidden, each count is a multiple of 5, shares come from those, and a session
    under 10 faces shows none."""
    add_results(session, ["Engaged"] * 6 + ["Bored"] * 3 + ["Neutral"] * 2)  # 11 faces
    shown = _summary_numbers(api, web, session)
    assert shown["api"] == (6, round(6 / 11, 4)) and shown["page"] == shown["report"] == "6"
    assert shown["notes"] == (False, False)
    _hide(session.classroom)
    before = _summary_numbers(api, web, session)
    add_results(session, ["Engaged"])  # one more photo, one face: 7 Engaged of 12
    after = _summary_numbers(api, web, session)
    # Rounded: 6 -> 5 and 7 -> 5 Engaged, 3 -> 5 Bored, 2 -> 0 Neutral; shares of 10 counted.
    expected = {
        "api": (5, 0.5), "list": 5, "trends": (5, 0.5), "csv": ("5", "50.0", "True"),
        "page": "5", "report": "5", "notes": (True, True),
    }  # fmt: skip
    assert before == expected and after == expected

    small = session.classroom.sessions.create(title="Small")
    add_results(small, ["Engaged", "Engaged", "Engaged"])  # 3 faces: would read 5 of 5
    summary = api.get(f"/api/sessions/{small.pk}/").data
    assert summary["summary"]["counts"]["Engaged"] == 5 and summary["summary"]["faces"] == 3
    assert summary["summary"]["shares"]["Engaged"] is None
    assert summary["summary"]["engagement_index"] is None
    # The dashboard's headline counts only sessions whose index is shown: 5 of 10, not 10 of 15.
    page = web.get(reverse("analytics:dashboard", args=[session.classroom_id])).content.decode()
    assert '<span class="big" id="headline-engagement">50%</span>' in page
    kinds = services.compare_kinds(services.classroom_trends(session.classroom))
    assert (kinds["in_person"]["sessions"], kinds["in_person"]["faces"]) == (1, 10)
