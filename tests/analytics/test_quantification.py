"""Corrected shares of sessions: computed by the worker with the calibration of the model version
that produced the faces, stored, and read back by the summary, the API, the CSV and the trends."""

import csv
import io

import pytest
from rest_framework.test import APIClient

from analytics import services
from analytics.models import Classroom, Session
from classifier.services import promote, register_model_version, set_calibration
from ml.quantify import MIN_FACES
from tests.analytics.conftest import READ, add_faces, calibration

pytestmark = pytest.mark.django_db


def test_a_known_calibration_gives_the_hand_solved_shares(session, model_version):
    # Half of Bored faces are read as Neutral: observed Bored 0.2 = 0.5 * true Bored, so true
    # Bored is 0.4, and observed Neutral 0.4 = true Neutral + 0.5 * 0.4, so true Neutral is 0.2.
    set_calibration(model_version, calibration(bored_as_neutral=50))
    add_faces(session, model_version, READ)
    services.quantify_session(session.pk)
    summary = services.session_summary(session)
    assert summary["method"] == "pacc"
    assert summary["corrected_shares"] == pytest.approx(
        {"Angry": 0.2, "Neutral": 0.2, "Engaged": 0.2, "Bored": 0.4}, abs=1e-4
    )
    # The existing fields keep their meaning: the plain count.
    assert summary["shares"] == {"Angry": 0.2, "Neutral": 0.4, "Engaged": 0.2, "Bored": 0.2}
    assert summary["engagement_index"] == 0.2
    for state, (low, high) in summary["intervals"].items():
        assert 0 <= low <= summary["corrected_shares"][state] <= high <= 1
    assert Session.objects.get(pk=session.pk).quantification["enough_faces"] is False


def test_a_perfect_calibration_leaves_the_shares_raw(session, model_version):
    set_calibration(model_version, calibration(bored_as_neutral=0))
    add_faces(session, model_version, READ)
    services.quantify_session(session.pk)
    summary = services.session_summary(session)
    assert summary["corrected_shares"] == pytest.approx(summary["shares"], abs=1e-4)


def test_no_calibration_leaves_the_shares_uncorrected(session, model_version):
    assert model_version.calibration is None
    add_faces(session, model_version, READ)
    assert services.quantify_session(session.pk) is None
    summary = services.session_summary(session)
    assert (summary["corrected_shares"], summary["intervals"], summary["method"]) == (
        None,
        None,
        None,
    )
    assert summary["shares"]["Neutral"] == 0.4


def test_a_new_active_model_does_not_alter_an_analysed_session(session, model_version, tmp_path):
    set_calibration(model_version, calibration(bored_as_neutral=50))
    add_faces(session, model_version, READ)
    services.quantify_session(session.pk)
    before = services.session_summary(session)

    # Another model (other bytes, its own perfect calibration) becomes active.
    import torch

    checkpoint = torch.load(model_version.checkpoint.path, weights_only=False)
    checkpoint["metrics"] = {"accuracy": 0.3}
    torch.save(checkpoint, tmp_path / "newer.pt")
    newer = promote(
        register_model_version(tmp_path / "newer.pt", name="newer", calibration=calibration(0))
    )
    assert newer.is_active and newer.calibration == calibration(0)
    # Recomputing (any later analysis does) still uses the faces' own version.
    services.quantify_session(session.pk)
    assert services.session_summary(session) == before
    assert before["corrected_shares"]["Bored"] == pytest.approx(0.4, abs=1e-4)


def test_faces_from_two_versions_are_corrected_each_with_its_own_and_combined(
    session, model_version, tmp_path, teacher
):
    """The issue's case: a model change mid-session, originals not kept (the default retention
    blurs them). The session keeps corrected shares: each version's faces corrected with its
    own calibration, combined counts-weighted, the interval from the combined bootstrap."""
    import torch

    set_calibration(model_version, calibration(bored_as_neutral=50))
    add_faces(session, model_version, READ * 8)  # 80 faces: Bored corrected 0.2 -> 0.4
    checkpoint = torch.load(model_version.checkpoint.path, weights_only=False)
    checkpoint["metrics"] = {"accuracy": 0.3}
    torch.save(checkpoint, tmp_path / "other.pt")
    other = promote(
        register_model_version(tmp_path / "other.pt", name="other", calibration=calibration(0))
    )
    add_faces(session, other, ["Engaged"] * 20)  # 20 faces, a perfect calibration: all Engaged
    result = services.quantify_session(session.pk)
    assert [(v["name"], v["faces"]) for v in result["versions"]] == [
        ("test model", 80), ("other", 20)
    ]  # fmt: skip
    assert result["versions"][0]["shares"]["Bored"] == pytest.approx(0.4, abs=1e-4)
    summary = services.session_summary(session)
    # 0.8 * 0.2 + 0.2 * 1.0 Engaged; 0.8 * 0.4 Bored.
    assert summary["corrected_shares"]["Engaged"] == pytest.approx(0.36, abs=1e-4)
    assert summary["corrected_shares"]["Bored"] == pytest.approx(0.32, abs=1e-4)
    low, high = summary["intervals"]["Bored"]
    assert low < 0.32 < high
    assert [(v["id"], v["share"]) for v in summary["model_versions"]] == [
        (model_version.pk, 0.8), (other.pk, 0.2)
    ]  # fmt: skip
    client = APIClient()
    client.force_authenticate(teacher)
    body = client.get(f"/api/sessions/{session.pk}/").json()
    assert body["uncorrected_reason"] == ""
    assert body["summary"]["model_versions"] == body["model_versions"]
    assert [v["share"] for v in body["model_versions"]] == [0.8, 0.2]


def test_a_version_without_calibration_leaves_a_mixed_session_uncorrected(
    session, model_version, tmp_path
):
    import torch

    set_calibration(model_version, calibration(0))
    add_faces(session, model_version, READ)
    checkpoint = torch.load(model_version.checkpoint.path, weights_only=False)
    checkpoint["metrics"] = {"accuracy": 0.3}
    torch.save(checkpoint, tmp_path / "other.pt")
    other = register_model_version(tmp_path / "other.pt", name="other")
    add_faces(session, other, ["Engaged"])
    assert services.quantify_session(session.pk) is None
    versions = services.model_versions_used([session.pk])[session.pk]
    assert "a model version that analysed it has no measured error rates" in (
        services.uncorrected_reason(None, {"corrected_shares": None, "faces": 11}, versions)
    )


def test_api_csv_and_trends_carry_the_corrected_shares(session, model_version, teacher):
    set_calibration(model_version, calibration(bored_as_neutral=50))
    add_faces(session, model_version, READ * (MIN_FACES // len(READ)))
    services.quantify_session(session.pk)
    client = APIClient()
    client.force_authenticate(teacher)
    summary = client.get(f"/api/sessions/{session.pk}/").json()["summary"]
    assert summary["method"] == "pacc"
    assert summary["corrected_shares"]["Bored"] == pytest.approx(0.4, abs=1e-4)
    low, high = summary["intervals"]["Bored"]
    assert low <= 0.4 <= high
    assert summary["shares"]["Bored"] == 0.2

    rows = list(csv.DictReader(io.StringIO(services.sessions_csv(session.classroom))))
    # In percent, as the pages show them (the header says `_pct`).
    assert float(rows[0]["corrected_Bored_pct"]) == pytest.approx(40, abs=0.1)
    assert float(rows[0]["share_Bored_pct"]) == 20
    assert float(rows[0]["corrected_Bored_low_pct"]) == round(low * 100, 1)
    assert float(rows[0]["corrected_Bored_high_pct"]) == round(high * 100, 1)
    assert (rows[0]["correction_method"], rows[0]["enough_faces"]) == ("pacc", "True")

    trend = client.get(f"/api/classrooms/{session.classroom.pk}/trends/").json()
    assert trend[0]["enough_faces"] is True and trend[0]["change"] is None


def test_the_detection_modes_are_the_detectors(classroom):
    from analytics.choices import DetectionMode
    from ml.detect import MODES
    from ml.options import DEFAULT_DETECTION_MODE, DETECTION_MODES

    assert list(MODES) == list(DETECTION_MODES) == DetectionMode.values
    assert classroom.detection_mode == DEFAULT_DETECTION_MODE


def test_analysis_uses_the_classrooms_detection_mode_and_stores_the_quantification(
    session, model_version, data_dir, eager_celery, django_capture_on_commit_callbacks
):
    from tests.analytics.conftest import upload
    from tests.analytics.test_analysis import group_photos

    set_calibration(model_version, calibration(bored_as_neutral=50))
    path = group_photos(data_dir, 1)[0]
    # A mode the detector does not know (bypassing the form) fails the photo with its reason:
    # the classroom's setting reaches the detector.
    Classroom.objects.filter(pk=session.classroom_id).update(detection_mode="careless")
    with django_capture_on_commit_callbacks(execute=True):
        (photo,) = services.upload_photos(session, [upload(path.name, path.read_bytes())]).photos
    photo.refresh_from_db()
    assert photo.status == "failed" and "unknown detection mode 'careless'" in photo.error

    Classroom.objects.filter(pk=session.classroom_id).update(detection_mode="thorough")
    with django_capture_on_commit_callbacks(execute=True):
        services.retry_photo(photo)
    photo.refresh_from_db()
    assert photo.status == "done", photo.error
    stored = Session.objects.get(pk=session.pk).quantification
    assert stored["faces"] == photo.faces.count() >= 2
    assert stored["method"] == "pacc" and sum(stored["shares"].values()) == pytest.approx(1, 1e-3)


def test_the_trend_marks_only_a_change_beyond_doubt(classroom, model_version):
    from datetime import timedelta

    from django.utils import timezone

    from analytics import charts

    set_calibration(model_version, calibration(0))
    start = timezone.now()
    # (Engaged, Bored) faces: 10 %, 12.5 %, a session without faces, 90 %, then 40 faces
    mixes = [(8, 72), (10, 70), (0, 0), (72, 8), (20, 20)]
    for day, (engaged, bored) in enumerate(mixes):
        session = Session.objects.create(
            classroom=classroom, title=f"Day {day}", started_at=start + timedelta(days=day)
        )
        add_faces(session, model_version, ["Engaged"] * engaged + ["Bored"] * bored)
        services.quantify_session(session.pk)
    trends = services.classroom_trends(classroom)
    # The last session is compared with the last one that has corrected shares.
    assert [row["change"] for row in trends] == [None, None, None, "up", None]
    figure = charts.engagement_over_time(trends)
    names = [trace["name"] for trace in figure["data"]]
    assert "Corrected engagement, 90 % range" in names
    (marker,) = [trace for trace in figure["data"] if trace["name"] == "Change beyond doubt"]
    assert marker["marker"]["symbol"] == ["triangle-up"]
    # Hovering a session says what the session table says: how many more faces would conclude.
    (line,) = [trace for trace in figure["data"] if trace["name"] == "Corrected engagement"]
    more = trends[-1]["faces_to_conclude"]
    assert more > 0 and line["text"][-1] == f" · not yet conclusive: about {more} more faces"
    assert line["text"][:-1] == ["", "", ""]


def test_the_dashboard_headline_says_whether_engagement_changed_beyond_doubt(
    client, teacher, classroom, model_version
):
    """The headline uses the chart's rule (ml.quantify.change): a raw move of a few points
    between two large sessions is "no change beyond doubt", never a bare difference."""
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    set_calibration(model_version, calibration(0))
    client.force_login(teacher)
    url = reverse("analytics:dashboard", args=[classroom.pk])
    start = timezone.now() - timedelta(days=10)

    def lesson(day: int, engaged: int, bored: int) -> str:
        session = Session.objects.create(
            classroom=classroom, title=f"Day {day}", started_at=start + timedelta(days=day)
        )
        add_faces(session, model_version, ["Engaged"] * engaged + ["Bored"] * bored)
        services.quantify_session(session.pk)
        page = client.get(url).content.decode()
        return " ".join(page.split('id="headline-change"')[1].split("</div>")[0].split())

    lesson(0, 8, 72)  # 10 % engaged
    same = lesson(1, 10, 70)  # 12.5 %: inside the first session's range
    assert 'data-verdict="same"' in same and ">No change beyond doubt<" in same
    assert "“Day 0” → “Day 1”: corrected 10% (90 % range" in same
    assert "the ranges overlap" in same
    up = lesson(2, 72, 8)
    assert 'data-verdict="up"' in up and ">Up beyond doubt<" in up and "→ 90% (" in up
    down = lesson(3, 8, 72)
    assert 'data-verdict="down"' in down and ">Down beyond doubt<" in down
    few = lesson(4, 9, 1)
    assert 'data-verdict="too_few"' in few and ">Too few faces to conclude<" in few
    assert f"raw 10% → 90% from 80 and 10 faces; a conclusion needs {MIN_FACES}" in few


def test_the_session_page_says_why_shares_are_uncorrected(client, teacher, session, model_version):
    from django.urls import reverse

    add_faces(session, model_version, READ)
    services.quantify_session(session.pk)
    client.force_login(teacher)
    page = client.get(reverse("analytics:session", args=[session.pk])).content.decode()
    assert "Shares are uncorrected (raw counts only): the model version that analysed it" in page
    assert 'id="uncorrected"' in page and 'id="uncorrected" hidden' not in page
    assert 'data-corrected="Bored">—' in page and 'data-share="Bored">20%' in page


def test_the_report_says_in_words_which_sessions_are_not_yet_conclusive(
    client, teacher, session, model_version
):
    from django.urls import reverse

    set_calibration(model_version, calibration(bored_as_neutral=50))
    add_faces(session, model_version, READ)
    services.quantify_session(session.pk)
    client.force_login(teacher)
    page = client.get(reverse("analytics:report", args=[session.classroom_id])).content.decode()
    assert '2 (20%)<br><span class="corrected">corrected 40%' in page
    assert "not yet conclusive: about 70 more faces" in page and services.CORRECTION_NOTE in page
    assert "few-faces" not in page  # not greyed


def test_the_api_says_why_shares_are_uncorrected(teacher, session, model_version):
    """The session page's live updates read the reason from the API, so it follows the faces."""
    from django.urls import reverse
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(teacher)
    url = reverse("analytics-api:session-detail", args=[session.pk])
    assert api.get(url).json()["uncorrected_reason"] == "no faces analysed yet"
    add_faces(session, model_version, READ)
    services.quantify_session(session.pk)
    assert "no measured error rates" in api.get(url).json()["uncorrected_reason"]
    set_calibration(model_version, calibration(bored_as_neutral=50))
    services.quantify_session(session.pk)
    assert api.get(url).json()["uncorrected_reason"] == ""


@pytest.mark.django_db(transaction=True)
def test_the_shares_are_computed_without_holding_the_database_write_lock(
    session, model_version, monkeypatch
):
    """A cold quantify_session imports QuaPy and bootstraps for seconds; on SQLite it held the
    whole database's write lock meanwhile, and uploads and heartbeats waited (issue 24, item 5).
    Another connection writes while the shares are computed: it must not find the lock taken."""
    import sqlite3

    from django.db import connection

    from analytics.services import quantification

    if connection.vendor != "sqlite":
        pytest.skip("the database-wide write lock is SQLite's")
    set_calibration(model_version, calibration(bored_as_neutral=50))
    add_faces(session, model_version, READ)
    path, real_quantify, written = (
        connection.settings_dict["NAME"],
        quantification.quantify_parts,
        [],
    )

    def quantify_while_another_process_writes(*args, **kwargs):
        other = sqlite3.connect(path, timeout=0.2)
        try:
            with other:
                other.execute("UPDATE analytics_classroom SET name = name")
            written.append(True)
        finally:
            other.close()
        return real_quantify(*args, **kwargs)

    monkeypatch.setattr(quantification, "quantify_parts", quantify_while_another_process_writes)
    assert services.quantify_session(session.pk)["method"] == "pacc"
    assert written == [True]
    assert Session.objects.get(pk=session.pk).quantification["method"] == "pacc"


def test_shares_computed_from_faces_that_changed_meanwhile_are_computed_again(
    session, model_version, monkeypatch
):
    """The last photo to finish writes the final numbers: a computation that saw fewer faces
    than are stored when it writes is done again."""
    from analytics.services import quantification

    set_calibration(model_version, calibration(bored_as_neutral=50))
    add_faces(session, model_version, READ)
    real_quantify, calls = quantification.quantify_parts, []

    def quantify_while_another_photo_finishes(*args, **kwargs):
        if not calls:  # another analysis stores its faces meanwhile
            add_faces(session, model_version, ["Engaged"] * 10)
        calls.append(True)
        return real_quantify(*args, **kwargs)

    monkeypatch.setattr(quantification, "quantify_parts", quantify_while_another_photo_finishes)
    result = services.quantify_session(session.pk)
    assert len(calls) == 2
    assert result["faces"] == len(READ) + 10
    assert Session.objects.get(pk=session.pk).quantification == result


def test_the_dashboard_never_pools_two_models_raw_and_names_them(
    client, teacher, classroom, model_version, tmp_path
):
    """The issue's case: two sessions by two models. The headline is the counts-weighted mean
    of the sessions' corrected engagement, with the weighted bounds, and names both models."""
    import torch
    from django.urls import reverse

    set_calibration(model_version, calibration(bored_as_neutral=50))
    first = Session.objects.create(classroom=classroom, title="Before")
    add_faces(first, model_version, READ * 8)
    checkpoint = torch.load(model_version.checkpoint.path, weights_only=False)
    checkpoint["metrics"] = {"accuracy": 0.3}
    torch.save(checkpoint, tmp_path / "other.pt")
    other = promote(
        register_model_version(tmp_path / "other.pt", name="other", calibration=calibration(0))
    )
    second = Session.objects.create(classroom=classroom, title="After")
    add_faces(second, other, ["Engaged"] * 20)
    for session in (first, second):
        services.quantify_session(session.pk)
    rows = [r for r in services.classroom_trends(classroom) if r["faces"]]
    headline = services.dashboard_headline(rows)
    assert headline["corrected"] and headline["engagement_index"] == pytest.approx(0.36, abs=1e-4)
    low, high = headline["interval"]
    a, b = rows[0]["intervals"]["Engaged"], rows[1]["intervals"]["Engaged"]
    assert (low, high) == pytest.approx(
        (0.8 * a[0] + 0.2 * b[0], 0.8 * a[1] + 0.2 * b[1]), abs=1e-4
    )
    assert [(v["name"], v["share"]) for v in headline["model_versions"]] == [
        ("test model", 0.8), ("other", 0.2)
    ]  # fmt: skip
    client.force_login(teacher)
    page = client.get(reverse("analytics:dashboard", args=[classroom.pk])).content.decode()
    versions = page.split('id="headline-versions">')[1].split("</span>")[0]
    assert "test model" in versions and "80% of faces" in versions and "other" in versions
    assert "corrected (90 % range" in page.split('id="headline"')[1].split("</div>")[0]
