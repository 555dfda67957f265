"""Lesson activities: uploads tagged from the classroom's editable list, pooled across lessons
per (activity, model version) with each version's calibration, compared by the trend's rule,
in the API, the dashboard, the CSV and the report."""

import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from analytics import services
from analytics.models import DEFAULT_ACTIVITIES, Photo, Session
from ml.quantify import MIN_FACES
from tests.analytics.conftest import add_faces, image_bytes

pytestmark = pytest.mark.django_db
START = timezone.now() - timedelta(days=30)


def tagged(session, version, activity: str, engaged: int, bored: int) -> Photo:
    photo = add_faces(session, version, ["Engaged"] * engaged + ["Bored"] * bored)
    photo.activity = activity
    photo.save()
    return photo


def lessons(classroom, version, days=range(3)) -> list[Session]:
    """Lessons of 30 faces of group work (60 % engaged) and 30 of direct teaching (30 %)."""
    made = []
    for day in days:
        session = Session.objects.create(
            classroom=classroom, title=f"Day {day}", started_at=START + timedelta(days=day)
        )
        tagged(session, version, "group work", 18, 12)
        tagged(session, version, "direct teaching", 9, 21)
        made.append(session)
    return made


def test_a_classroom_starts_with_the_default_activities_and_edits_them(client, teacher, api):
    created = api.post("/api/classrooms/", {"name": "8C"}, format="json").json()
    assert created["activities"] == list(DEFAULT_ACTIVITIES)
    url = f"/api/classrooms/{created['id']}/"
    changed = api.patch(url, {"activities": [" Lab ", "quiz", "quiz", ""]}, format="json")
    assert changed.status_code == 200 and changed.json()["activities"] == ["Lab", "quiz"]
    too_long = api.patch(url, {"activities": ["x" * 41]}, format="json")
    assert too_long.status_code == 400 and "longer than 40 characters" in str(too_long.json())
    client.force_login(teacher)
    page = reverse("analytics:activities", args=[created["id"]])
    response = client.post(page, {"activities": "group work\nstations\n"}, follow=True)
    assert "Activities saved: group work, stations." in response.content.decode()
    assert api.get(url).json()["activities"] == ["group work", "stations"]


def test_the_upload_tags_its_photos_and_refuses_an_unknown_activity(api, session, eager_celery):
    url = f"/api/sessions/{session.pk}/photos/"
    ok = api.post(
        url, {"image": [io.BytesIO(image_bytes())], "activity": "quiz"}, format="multipart"
    )
    assert ok.status_code == 202, ok.data
    assert Photo.objects.get(pk=ok.data["photos"][0]["id"]).activity == "quiz"
    bad = api.post(
        url, {"image": [io.BytesIO(image_bytes(seed=1))], "activity": "nap"}, format="multipart"
    )
    assert bad.status_code == 400
    assert bad.data["detail"].startswith("“nap” is not one of this classroom's activities")
    assert session.photos.count() == 1  # nothing of the refused upload stored
    untagged = api.post(url, {"image": [io.BytesIO(image_bytes(seed=2))]}, format="multipart")
    assert untagged.status_code == 202
    assert Photo.objects.get(pk=untagged.data["photos"][0]["id"]).activity == ""


def test_activities_pool_across_lessons_with_narrower_ranges(api, classroom, calibrated):
    sessions = lessons(classroom, calibrated)
    body = api.get(f"/api/classrooms/{classroom.pk}/activities/").json()
    pools = {row["activity"]: row for row in body["activities"]}
    assert list(pools) == ["direct teaching", "group work"]  # the classroom's list order
    group = pools["group work"]
    assert group["faces"] == 90 and group["sessions"] == 3 and group["method"] == "pacc"
    assert group["corrected_shares"]["Engaged"] == pytest.approx(0.6)
    low, high = group["intervals"]["Engaged"]
    # One lesson's 30 faces alone: its range is wider than the pool of three.
    one = services.activity_pools(classroom, before=sessions[0].started_at)[1]
    assert one["faces"] == 30
    assert high - low < one["intervals"]["Engaged"][1] - one["intervals"]["Engaged"][0]
    (comparison,) = body["comparisons"]
    assert comparison["verdict"] == "up" and comparison["reference"] == "direct teaching"
    assert comparison["sentence"].startswith(
        "Group work: engagement 30 points above direct teaching (±"
    )
    assert comparison["sentence"].endswith(
        "3 lessons, 90 faces: beyond doubt (the 90 % ranges do not overlap)."
    )


def test_the_date_filters_are_the_dashboards(api, classroom, calibrated):
    lessons(classroom, calibrated)
    url = f"/api/classrooms/{classroom.pk}/activities/"
    after = (START + timedelta(days=1)).date().isoformat()
    body = api.get(url, {"after": after}).json()
    assert {row["faces"] for row in body["activities"]} == {60}
    assert api.get(url, {"after": "not a date"}).status_code == 400
    few = api.get(url, {"after": (START + timedelta(days=2)).date().isoformat()}).json()
    assert few["comparisons"][0]["verdict"] == "too_few"
    assert f"not yet conclusive (each needs {MIN_FACES} faces)" in few["comparisons"][0]["sentence"]


def test_an_uncalibrated_version_leaves_its_activity_uncorrected(api, classroom, model_version):
    lessons(classroom, model_version, days=[0])
    body = api.get(f"/api/classrooms/{classroom.pk}/activities/").json()
    assert all(row["corrected_shares"] is None for row in body["activities"])
    assert body["comparisons"] == []


def test_hidden_face_detail_rounds_and_withholds_small_pools(api, classroom, calibrated):
    classroom.hide_face_detail = True
    classroom.save()
    lessons(classroom, calibrated)
    pools = api.get(f"/api/classrooms/{classroom.pk}/activities/").json()["activities"]
    group = next(p for p in pools if p["activity"] == "group work")
    assert group["corrected_shares"]["Engaged"] == 0.6  # two decimals: whole percents
    only = api.get(
        f"/api/classrooms/{classroom.pk}/activities/",
        {"after": (START + timedelta(days=2)).date().isoformat()},
    ).json()["activities"]
    assert all(p["corrected_shares"] is None for p in only)  # 30 faces < MIN_FACES


def test_dashboard_csv_and_report_compare_activities(client, teacher, classroom, calibrated):
    lessons(classroom, calibrated)
    client.force_login(teacher)
    page = client.get(reverse("analytics:dashboard", args=[classroom.pk])).content.decode()
    section = page.split('id="activities"')[1].split("</section>")[0]
    assert "Group work: engagement 30 points above direct teaching (±" in section
    assert "3 lessons, 90 faces: beyond doubt" in section
    csv = client.get(f"/api/classrooms/{classroom.pk}/export.csv?rows=activities").content.decode()
    header, *rows = csv.splitlines()
    assert header.startswith("activity,sessions,faces,")
    assert "shares in % (0-100)" in header or "_pct" in header
    assert rows[1].startswith("group work,3,90,")
    report = client.get(reverse("analytics:report", args=[classroom.pk])).content.decode()
    assert "Group work: engagement 30 points above direct teaching" in report
