"""The conclusion meter: how many more faces (and photos) a session needs before the trend's
"beyond doubt" rule (ml.quantify.change) can conclude, in the summary, the API and the pages."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from analytics import services
from analytics.models import Session
from ml.quantify import MIN_FACES
from tests.analytics.conftest import add_faces

pytestmark = pytest.mark.django_db
START = timezone.now() - timedelta(days=30)


def lesson(classroom, version, day: int, photos: list[tuple[int, int]]) -> Session:
    """A quantified session of photos of (Engaged, Bored) faces."""
    session = Session.objects.create(
        classroom=classroom, title=f"Day {day}", started_at=START + timedelta(days=day)
    )
    for engaged, bored in photos:
        add_faces(session, version, ["Engaged"] * engaged + ["Bored"] * bored)
    services.quantify_session(session.pk)
    return session


def test_a_first_session_needs_the_faces_any_comparison_needs(classroom, calibrated):
    session = lesson(classroom, calibrated, 0, [(10, 10), (8, 12)])
    summary = services.session_summary(session)
    assert summary["faces_to_conclude"] == MIN_FACES - 40
    assert summary["photos_to_conclude"] == 2  # 20 faces per photo
    assert summary["conclusion"].startswith("Not yet conclusive: engagement 45% (90 % range ")
    assert (
        "About 40 more faces (about 2 more photos at 20 faces per photo)" in summary["conclusion"]
    )


def test_the_faces_it_asks_for_are_enough_for_the_trend_to_conclude(classroom, calibrated):
    """The 1/sqrt(n) estimate checked against the real rule: the same mix with the faces the
    meter asks for makes the trend conclude, with much fewer it does not."""
    lesson(classroom, calibrated, 0, [(30, 70)])  # 30 % engaged, 100 faces
    later = lesson(classroom, calibrated, 1, [(9, 11)] * 4)  # 45 %, 80 faces: ranges overlap
    summary = services.session_summary(later)
    more = summary["faces_to_conclude"]
    assert more and more > 0 and summary["photos_to_conclude"] == -(-more // 20)
    assert summary["conclusion"].startswith(
        "Not yet conclusive: engagement 45% (90 % range 35%–55%) against 30% (23%–37%) for "
        "“Day 0”. To tell them apart beyond doubt, the range must stay above 37%: 8 points on "
        "that side instead of 10. About 46 more faces (about 3 more photos at 20 faces per "
        "photo) would be enough."
    )
    assert services.classroom_trends(classroom)[-1]["change"] is None
    add_faces(later, calibrated, ["Engaged"] * 9 + ["Bored"] * 11)
    services.quantify_session(later.pk)
    assert services.classroom_trends(classroom)[-1]["change"] is None  # one photo: too few
    for _ in range(summary["photos_to_conclude"] - 1):
        add_faces(later, calibrated, ["Engaged"] * 9 + ["Bored"] * 11)
    services.quantify_session(later.pk)
    assert services.classroom_trends(classroom)[-1]["change"] == "up"
    summary = services.session_summary(later)
    assert summary["faces_to_conclude"] == 0
    assert summary["conclusion"].startswith("Conclusive: engagement 45% (90 % range ")


def test_an_estimate_inside_the_earlier_range_cannot_conclude_by_more_faces(classroom, calibrated):
    lesson(classroom, calibrated, 0, [(40, 60)])
    later = lesson(classroom, calibrated, 1, [(41, 59)])
    summary = services.session_summary(later)
    assert summary["faces_to_conclude"] is None and summary["photos_to_conclude"] is None
    assert "lies within the range of “Day 0”" in summary["conclusion"]


def test_a_session_before_with_too_few_faces_is_named(classroom, calibrated):
    lesson(classroom, calibrated, 0, [(5, 15)])
    later = lesson(classroom, calibrated, 1, [(60, 40)])
    summary = services.session_summary(later)
    assert summary["faces_to_conclude"] == 0
    assert f"“Day 0”, has 20 faces, fewer than the {MIN_FACES}" in summary["conclusion"]


def test_hidden_face_detail_rounds_the_meter_and_keeps_withheld_shares_withheld(
    classroom, calibrated
):
    classroom.hide_face_detail = True
    classroom.save()
    session = lesson(classroom, calibrated, 0, [(13, 10)])
    summary = services.session_summary(session)
    assert summary["corrected_shares"] is None
    assert summary["faces_to_conclude"] == 60  # 57, in fives
    assert summary["conclusion"] == (
        f"Not yet conclusive: corrected shares are shown from {MIN_FACES} faces. About 60 more "
        "faces (about 3 more photos at 23 faces per photo) would be enough."
    )


def test_the_api_page_and_headline_carry_the_meter(client, teacher, classroom, calibrated):
    lesson(classroom, calibrated, 0, [(30, 70)])
    later = lesson(classroom, calibrated, 1, [(9, 11)] * 4)
    api = APIClient()
    api.force_authenticate(teacher)
    body = api.get(reverse("analytics-api:session-detail", args=[later.pk])).json()
    summary = services.session_summary(later)
    assert body["summary"]["faces_to_conclude"] == summary["faces_to_conclude"] > 0
    assert body["summary"]["conclusion"] == summary["conclusion"]
    trend = api.get(reverse("analytics-api:classroom-trends", args=[classroom.pk])).json()
    assert trend[-1]["faces_to_conclude"] == summary["faces_to_conclude"]
    client.force_login(teacher)
    page = client.get(reverse("analytics:session", args=[later.pk])).content.decode()
    assert summary["conclusion"].replace("“", "&ldquo;") in page or summary["conclusion"] in page
    assert "±20" not in page and "few-faces" not in page
    dashboard = client.get(reverse("analytics:dashboard", args=[classroom.pk])).content.decode()
    headline = dashboard.split('id="headline-change"')[1].split("</div>")[0]
    assert 'id="headline-meter"' in headline and "Not yet conclusive" in headline
