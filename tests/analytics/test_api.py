"""The teacher part of the REST contract (issue 8): fields, status codes, scoping, exports."""

import csv
import io
from datetime import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import Classroom, Consent, Photo, Session
from tests.analytics.conftest import (
    add_results,
    image_bytes,
    make_classroom,
    zip_bytes,
)

pytestmark = pytest.mark.django_db


def test_classroom_create_read_update_delete_and_consent(api, teacher):
    created = api.post("/api/classrooms/", {"name": "8A", "subject": "Maths"}, format="json")
    assert created.status_code == 201, created.data
    body = created.data
    assert (body["retention"], body["consent"]) == ("blur", None)  # the default
    pk = body["id"]
    consent = api.post(
        f"/api/classrooms/{pk}/consent/",
        {"obtained_from": "Guardians of all students", "method": "written",
         "obtained_on": "2024-09-02", "notes": "Forms in the office"},
        format="json",
    )  # fmt: skip
    assert consent.status_code == 201, consent.data
    detail = api.get(f"/api/classrooms/{pk}/").data
    assert detail["consent"]["obtained_from"] == "Guardians of all students"
    assert detail["consent"]["recorded_by"] == teacher.username
    missing = api.post(f"/api/classrooms/{pk}/consent/", {"method": "written"}, format="json")
    assert missing.status_code == 400
    assert {"obtained_from", "obtained_on"} <= set(missing.data)
    patched = api.patch(f"/api/classrooms/{pk}/", {"retention": "keep"}, format="json")
    assert patched.status_code == 200 and patched.data["retention"] == "keep"
    assert api.put(f"/api/classrooms/{pk}/", {"name": "x"}, format="json").status_code == 405
    assert api.delete(f"/api/classrooms/{pk}/").status_code == 204
    assert not Classroom.objects.filter(pk=pk).exists()


def test_sessions_filter_and_summary(api, classroom, model_version):
    make = lambda title, when, kind="in_person": api.post(  # noqa: E731
        "/api/sessions/",
        {"classroom": classroom.pk, "title": title, "started_at": when, "kind": kind},
        format="json",
    )
    first = make("Monday", "2024-05-06T09:00:00Z")
    assert first.status_code == 201, first.data
    make("Tuesday", "2024-05-07T09:00:00Z", "online")
    make("Friday", "2024-05-10T09:00:00Z")
    session = Session.objects.get(pk=first.data["id"])
    add_results(session, ["Engaged", "Engaged", "Bored", "Neutral"], version=model_version)
    Photo.objects.create(session=session, status="failed", error="x")

    listed = api.get("/api/sessions/", {"classroom": classroom.pk, "after": "2024-05-07"}).data
    assert [s["title"] for s in listed["results"]] == ["Friday", "Tuesday"]
    assert api.get("/api/sessions/", {"before": "2024-05-06T23:00"}).data["count"] == 1
    summary = api.get(f"/api/sessions/{session.pk}/").data["summary"]
    assert summary["faces"] == 4
    assert summary["counts"] == {"Angry": 0, "Neutral": 1, "Engaged": 2, "Bored": 1}
    assert summary["shares"]["Engaged"] == 0.5 and summary["engagement_index"] == 0.5
    assert summary["photos"] == {"queued": 0, "analysing": 0, "done": 1, "failed": 1}

    trends = api.get(f"/api/classrooms/{classroom.pk}/trends/").data
    assert [r["title"] for r in trends] == ["Monday", "Tuesday", "Friday"]
    assert trends[0]["engagement_index"] == 0.5 and trends[1]["engagement_index"] is None
    ranged = api.get(f"/api/classrooms/{classroom.pk}/trends/", {"after": "2024-05-07"}).data
    assert len(ranged) == 2
    bad = api.get(f"/api/classrooms/{classroom.pk}/trends/", {"after": "someday"})
    assert bad.status_code == 400


def test_a_session_cannot_be_created_in_or_moved_to_another_teachers_classroom(
    api, classroom, other_teacher
):
    foreign = make_classroom(other_teacher)
    response = api.post(
        "/api/sessions/",
        {"classroom": foreign.pk, "title": "x", "started_at": "2024-05-06T09:00:00Z"},
        format="json",
    )
    assert response.status_code == 400 and "classroom" in response.data
    own = Session.objects.create(classroom=classroom, title="Mine")
    moved = api.patch(f"/api/sessions/{own.pk}/", {"classroom": foreign.pk}, format="json")
    assert moved.status_code == 400


def test_upload_answers_202_with_photos_and_per_file_errors(api, session, eager_celery):
    response = api.post(
        f"/api/sessions/{session.pk}/photos/",
        {"image": [
            io.BytesIO(image_bytes()),
            io.BytesIO(b"plain text"),
            io.BytesIO(zip_bytes({"in.png": image_bytes("PNG")})),
        ]},
        format="multipart",
    )  # fmt: skip
    assert response.status_code == 202, response.data
    assert len(response.data["photos"]) == 2
    first = response.data["photos"][0]
    assert first["url"] == f"/api/photos/{first['id']}/"
    assert [e["detail"] for e in response.data["errors"]] == [
        "image is not a photo we can read: use JPEG, PNG, WebP or BMP."
    ]

    photo = api.get(first["url"]).data
    assert set(photo) >= {"id", "session", "status", "error", "width", "height"}
    assert set(photo) >= {"model_version", "faces"}
    assert photo["session"] == session.pk and photo["status"] == "queued"
    assert api.post(f"/api/photos/{first['id']}/retry/").status_code == 409


def test_upload_errors_400_409(api, session, teacher, settings):
    rejected = api.post(
        f"/api/sessions/{session.pk}/photos/", {"image": [io.BytesIO(b"nope")]}, format="multipart"
    )
    assert rejected.status_code == 400
    assert rejected.data["photos"] == [] and len(rejected.data["errors"]) == 1
    assert "No file was accepted" in rejected.data["detail"]
    none = api.post(f"/api/sessions/{session.pk}/photos/", {}, format="multipart")
    assert none.status_code == 400 and "No file received" in none.data["detail"]
    settings.EDUMOOD_MAX_FILES_PER_BATCH = 1
    many = api.post(
        f"/api/sessions/{session.pk}/photos/",
        {"image": [io.BytesIO(image_bytes(seed=i)) for i in range(2)]},
        format="multipart",
    )
    assert many.status_code == 400 and "one upload takes at most 1" in many.data["detail"]

    no_consent = Session.objects.create(classroom=make_classroom(teacher, consent=False), title="x")
    refused = api.post(
        f"/api/sessions/{no_consent.pk}/photos/",
        {"image": [io.BytesIO(image_bytes())]},
        format="multipart",
    )
    assert refused.status_code == 409
    assert "consent" in refused.data["detail"]
    assert not Photo.objects.exists()


def test_uploads_are_throttled_by_their_own_scope(api, session, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"uploads": "2/min", "token": "20/min"},
    }
    from django.core.cache import cache

    cache.clear()
    codes = [
        api.post(
            f"/api/sessions/{session.pk}/photos/", {"image": [io.BytesIO(b"x")]}, format="multipart"
        ).status_code
        for _ in range(3)
    ]
    assert codes == [400, 400, 429]
    assert api.get(f"/api/sessions/{session.pk}/").status_code == 200  # other calls unaffected
    cache.clear()


def test_csv_exports_hold_aggregates_and_faces_but_no_images(api, session, model_version):
    session.title = "=HYPERLINK(evil)"
    session.save()
    photo = add_results(session, ["Engaged", "Bored"], version=model_version)
    captured = timezone.make_aware(datetime(2024, 5, 6, 9, 30))
    Photo.objects.filter(pk=photo.pk).update(original_name="back-row.jpg", captured_at=captured)
    faces = api.get(f"/api/sessions/{session.pk}/export.csv")
    assert faces.status_code == 200 and faces["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(faces.content.decode())))
    assert [r["state"] for r in rows] == ["Engaged", "Bored"]
    assert rows[0]["session_title"] == "'=HYPERLINK(evil)"  # never run as a formula
    assert rows[0]["p_engaged"] == "0.7" and rows[0]["model_version"] == "test model"
    assert not any("image" in column for column in rows[0])
    assert rows[0]["photo_file"] == "back-row.jpg"
    assert rows[0]["captured_at"] == captured.isoformat() and rows[0]["uploaded_at"]

    sessions = api.get(f"/api/classrooms/{session.classroom_id}/export.csv")
    (row,) = csv.DictReader(io.StringIO(sessions.content.decode()))
    assert (row["faces"], row["engagement_index_pct"], row["count_Engaged"]) == ("2", "50.0", "1")
    assert row["photos_done"] == "1" and row["model_versions"] == "test model"
    per_face = api.get(f"/api/classrooms/{session.classroom_id}/export.csv?rows=faces")
    assert len(list(csv.DictReader(io.StringIO(per_face.content.decode())))) == 2
    accept_csv = api.get(f"/api/sessions/{session.pk}/export.csv", HTTP_ACCEPT="text/csv")
    assert accept_csv.status_code == 200


def _endpoints(classroom, session, photo):
    c, s, p = classroom.pk, session.pk, photo.pk
    return [
        ("get", f"/api/classrooms/{c}/"), ("patch", f"/api/classrooms/{c}/"),
        ("delete", f"/api/classrooms/{c}/"), ("post", f"/api/classrooms/{c}/consent/"),
        ("get", f"/api/classrooms/{c}/trends/"), ("get", f"/api/classrooms/{c}/export.csv"),
        ("get", f"/api/sessions/{s}/"), ("patch", f"/api/sessions/{s}/"),
        ("delete", f"/api/sessions/{s}/"), ("post", f"/api/sessions/{s}/photos/"),
        ("post", f"/api/sessions/{s}/reanalyse/"), ("get", f"/api/sessions/{s}/export.csv"),
        ("get", f"/api/photos/{p}/"), ("post", f"/api/photos/{p}/retry/"),
    ]  # fmt: skip


def test_another_teachers_objects_are_404_and_anonymous_is_401(session, other_teacher):
    photo = add_results(session, ["Engaged"])
    Photo.objects.filter(pk=photo.pk).update(status="failed")
    intruder = APIClient()
    intruder.force_authenticate(other_teacher)
    anonymous = APIClient()
    for method, url in _endpoints(session.classroom, session, photo):
        assert getattr(intruder, method)(url).status_code == 404, (method, url)
        assert getattr(anonymous, method)(url).status_code == 401, (method, url)
    for url in ("/api/classrooms/", "/api/sessions/", "/api/photos/"):
        assert intruder.get(url).data["count"] == 0
        assert anonymous.get(url).status_code == 401
    assert intruder.get(f"/api/photos/?session={session.pk}").data["count"] == 0
    assert Consent.objects.count() == 1 and Session.objects.filter(pk=session.pk).exists()


def test_schema_documents_the_teacher_endpoints_and_their_errors(api):
    schema = api.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    upload = paths["/api/sessions/{id}/photos/"]["post"]
    assert {"202", "400", "404", "409", "429"} <= set(upload["responses"])
    assert "409" in paths["/api/photos/{id}/retry/"]["post"]["responses"]
    for path in ("/api/classrooms/{id}/export.csv", "/api/sessions/{id}/export.csv",
                 "/api/classrooms/{id}/trends/", "/api/classrooms/{id}/consent/"):  # fmt: skip
        assert path in paths
    summary = schema["components"]["schemas"]["Summary"]["properties"]
    assert set(summary) == {"faces", "counts", "shares", "engagement_index", "photos"} | {
        "corrected_shares", "intervals", "method", "model_versions", "counts_rounded",
        "faces_to_conclude", "photos_to_conclude", "conclusion",
    }  # fmt: skip
    assert "multiple of 5" in summary["counts_rounded"]["description"]
    for name in ("corrected_shares", "intervals", "method"):
        assert summary[name]["nullable"] is True and summary[name]["description"]
    assert summary["intervals"]["additionalProperties"]["maxItems"] == 2
    trend = schema["components"]["schemas"]["TrendRow"]["properties"]
    assert trend["change"]["nullable"] is True and "enough_faces" in trend


@pytest.mark.parametrize(("url", "parameter"), [("/api/sessions/", "classroom"),
                                                ("/api/photos/", "session")])  # fmt: skip
def test_filters_by_id_do_not_tell_another_teachers_ids_from_missing_ones(
    api, other_teacher, url, parameter
):
    foreign_session = Session.objects.create(classroom=make_classroom(other_teacher), title="x")
    foreign = {"classroom": foreign_session.classroom_id, "session": foreign_session.pk}[parameter]
    replies = [api.get(url, {parameter: pk}) for pk in (foreign, foreign + 1000)]
    assert [r.status_code for r in replies] == [200, 200]
    assert replies[0].json() == replies[1].json()
    assert replies[0].json()["count"] == 0
    # Values no database id can take are a plain 400 (found by `make fuzz` as a 500).
    for value in ("-1.7976931348623157e+308", "1.5", str(2**64)):
        reply = api.get(url, {parameter: value})
        assert reply.status_code == 400 and parameter in reply.json()


def test_consent_dated_in_the_future_does_not_unlock_uploads(api, teacher):
    from datetime import timedelta

    from django.utils import timezone

    classroom = make_classroom(teacher, consent=False)
    session = Session.objects.create(classroom=classroom, title="x")
    tomorrow = timezone.localdate() + timedelta(days=1)
    recorded = api.post(
        f"/api/classrooms/{classroom.pk}/consent/",
        {"obtained_from": "Parents", "method": "written", "obtained_on": tomorrow.isoformat()},
        format="json",
    )
    assert recorded.status_code == 400
    assert recorded.json() == {"obtained_on": ["Consent cannot be dated in the future."]}
    # A row dated in the future (recorded before dates were checked) is not in force either.
    Consent.objects.create(
        classroom=classroom, obtained_from="Parents", method="written", obtained_on=tomorrow
    )
    upload = api.post(
        f"/api/sessions/{session.pk}/photos/", {"image": [io.BytesIO(image_bytes())]},
        format="multipart",
    )  # fmt: skip
    assert upload.status_code == 409
    assert api.get(f"/api/classrooms/{classroom.pk}/").json()["consent"] is None
    assert not Photo.objects.exists()


def test_api_reads_of_results_are_in_the_access_log_once_per_window(api, session, teacher):
    from analytics.models import AccessRecord

    photo = add_results(session, ["Engaged"])
    for _ in range(3):  # a client polling: one record per view, not one per request
        assert api.get(f"/api/sessions/{session.pk}/").status_code == 200
        assert api.get("/api/photos/", {"session": session.pk}).status_code == 200
        assert api.get(f"/api/photos/{photo.pk}/").status_code == 200
        assert api.get(f"/api/classrooms/{session.classroom_id}/trends/").status_code == 200
        assert api.get("/api/sessions/").status_code == 200  # every session's summary
    logged = AccessRecord.objects.order_by("id").values_list("action", "session", "detail")
    assert list(logged) == [
        ("viewed_session", session.pk, "API"),
        ("viewed_session", session.pk, "API: photos"),
        ("viewed_dashboard", None, "API: trends"),
        ("viewed_dashboard", None, "API: sessions list"),
    ]
    assert set(AccessRecord.objects.values_list("username", flat=True)) == {teacher.username}
