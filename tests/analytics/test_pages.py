"""Teacher pages: the journey, messages, permission checks on every page and action."""

import json
from datetime import datetime

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from analytics import services
from analytics.models import AccessRecord, Classroom, Consent, Photo, Session
from tests.analytics.conftest import add_results, image_bytes, make_classroom, upload
from tests.conftest import measure_on_reference

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(client, teacher):
    client.force_login(teacher)
    return client


def test_create_a_classroom_record_consent_and_create_a_session(web, teacher):
    page = web.get(reverse("analytics:classrooms"))
    assert b"no classrooms yet" in page.content
    created = web.post(reverse("analytics:classrooms"), {"name": "9C", "subject": "History",
                                                         "retention": "delete"})  # fmt: skip
    classroom = Classroom.objects.get(owner=teacher)
    assert created.url == reverse("analytics:classroom", args=[classroom.pk])
    page = web.get(created.url)
    assert b"No consent recorded" in page.content

    # A checkbox alone is not consent: who, how and when are all required.
    empty = web.post(reverse("analytics:consent", args=[classroom.pk]), {})
    assert empty.status_code == 400 and not Consent.objects.exists()
    assert b"This field is required" in empty.content
    future = web.post(
        reverse("analytics:consent", args=[classroom.pk]),
        {"obtained_from": "Parents", "method": "written", "obtained_on": "2999-01-01"},
    )
    assert b"cannot be dated in the future" in future.content
    other = web.post(
        reverse("analytics:consent", args=[classroom.pk]),
        {"obtained_from": "Parents", "method": "other", "obtained_on": "2024-09-01"},
    )
    assert b"Describe how consent was obtained" in other.content
    web.post(
        reverse("analytics:consent", args=[classroom.pk]),
        {"obtained_from": "Parents of 24 students", "method": "written",
         "obtained_on": "2024-09-01", "notes": "Signed forms in the office"},
    )  # fmt: skip
    assert classroom.consent.obtained_from == "Parents of 24 students"
    assert b"Parents of 24 students" in web.get(created.url).content

    response = web.post(
        reverse("analytics:session-create", args=[classroom.pk]),
        {"title": "WW1 sources", "started_at": "2024-10-01T10:00", "kind": "online"},
    )
    session = Session.objects.get(classroom=classroom)
    assert response.url == reverse("analytics:session", args=[session.pk])
    assert session.kind == "online"
    bad = web.post(reverse("analytics:session-create", args=[classroom.pk]), {"title": ""})
    assert bad.status_code == 400


def test_session_page_shows_summary_definition_model_and_accuracy_note(web, session, model_version):
    add_results(session, ["Engaged", "Engaged", "Bored"], version=model_version)
    page = web.get(reverse("analytics:session", args=[session.pk]))
    text = page.content.decode()
    assert "67%" in text  # engagement index: 2 of 3 faces
    assert services.ENGAGEMENT_DEFINITION in text
    assert "estimated from facial expression" in text and "25.0%" in text  # metrics["accuracy"]
    assert "Results from: test model." in text
    config = json.loads(text.split('id="session-config" type="application/json">')[1].split("<")[0])
    assert config["uploadUrl"] == f"/api/sessions/{session.pk}/photos/"
    assert len(config["photos"][0]["faces"]) == 3
    assert 'id="dropzone"' in text


def test_session_page_without_consent_explains_why_uploads_are_refused(web, teacher):
    classroom = make_classroom(teacher, consent=False)
    session = Session.objects.create(classroom=classroom, title="x")
    page = web.get(reverse("analytics:session", args=[session.pk]))
    assert b"No consent recorded" in page.content and b'id="dropzone"' not in page.content


def test_photo_image_is_served_only_to_its_owner_and_never_cached(web, session, analyse):
    (photo,) = analyse(session, upload("a.png", image_bytes("PNG")))
    response = web.get(reverse("analytics:photo-image", args=[photo.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == photo.image.open("rb").read()
    assert response["Cache-Control"] == "private, no-store"
    assert response["Content-Type"] == "image/png"
    Photo.objects.filter(pk=photo.pk).update(image=None, image_state="deleted")
    assert web.get(reverse("analytics:photo-image", args=[photo.pk])).status_code == 404


def test_dashboard_explains_empty_states_and_draws_charts_with_data(web, classroom):
    url = reverse("analytics:dashboard", args=[classroom.pk])
    assert b"No sessions yet" in web.get(url).content
    monday = Session.objects.create(
        classroom=classroom, title="Mon", started_at=timezone.make_aware(datetime(2024, 5, 6, 9))
    )
    assert b"no analysed\n  faces yet" in web.get(url).content
    add_results(monday, ["Engaged", "Bored"])
    add_results(monday, ["Engaged", "Engaged"])
    online = Session.objects.create(
        classroom=classroom, title="Tue", kind="online",
        started_at=timezone.make_aware(datetime(2024, 5, 7, 9)),
    )  # fmt: skip
    add_results(online, ["Neutral", "Angry"])
    page = web.get(url).content.decode()
    figures = json.loads(
        page.split('id="figures" type="application/json">')[1].split("</script")[0]
    )
    engagement = figures["engagement"]["data"][0]
    assert engagement["name"] == "Engagement index (Engaged share)"
    assert engagement["y"] == [0.75, 0.0]
    # One point per session on a category axis (no empty days); the index is not drawn twice.
    assert engagement["x"] == ["Mon (06 May 2024)", "Tue (07 May 2024)"]
    assert figures["engagement"]["layout"]["xaxis"]["type"] == "category"
    names = [trace["name"] for trace in figures["engagement"]["data"]]
    assert "Engaged share" not in names and "Bored share" in names
    # Every chart is on one percentage scale.
    for name in ("engagement", "distribution", "kinds"):
        assert figures[name]["layout"]["yaxis"]["tickformat"] == ".0%"
    distribution = {t["name"]: t["y"] for t in figures["distribution"]["data"]}
    assert distribution["Engaged"] == [0.75, 0.0] and distribution["Angry"] == [0.0, 0.5]
    assert figures["distribution"]["layout"]["barmode"] == "stack"
    # One valid colour per kind, so the legend's swatches are valid (no list of colours).
    colours = [trace["marker"]["color"] for trace in figures["kinds"]["data"]]
    assert len(set(colours)) == 2 and all(c.startswith("#") for c in colours)
    assert '<span class="big" id="headline-faces">6</span>' in page
    assert 'id="headline-trend">Too few faces to conclude</span>' in page
    assert figures["timeline"] is None  # the latest session has only one photo
    assert "vendor/plotly-basic.min.js" in page  # scatter and bar only: the small bundle
    chosen = web.get(url, {"session": monday.pk}).content.decode()
    # Monday's two photos of two faces: a photo-by-photo line would swing by single faces.
    assert '"timeline": null' in chosen and 'id="timeline-too-few"' in chosen
    assert "Not shown for “Mon”: 0 of its 2 analysed photos have at least 10 faces" in chosen
    add_results(monday, ["Engaged"] * 10)
    add_results(monday, ["Engaged"] * 6 + ["Bored"] * 4)
    chosen = web.get(url, {"session": monday.pk}).content.decode()
    assert '"timeline": {"data"' in chosen and 'id="timeline-too-few"' not in chosen
    timeline = json.loads(
        chosen.split('id="figures" type="application/json">')[1].split("</script")[0]
    )
    assert timeline["timeline"]["data"][0]["y"] == [1.0, 0.6]  # the two photos of 10 faces
    assert "Photos with at least 10 faces: 2 of 4; the others are left out" in chosen
    ranged = web.get(url, {"after": "2024-05-07", "before": "2024-05-07"}).content.decode()
    assert "The comparison needs analysed sessions of both kinds" in ranged
    assert b"in this date range" in web.get(url, {"after": "2030-01-01"}).content


def test_report_lists_sessions_for_printing(web, session):
    add_results(session, ["Engaged", "Neutral"])
    page = web.get(reverse("analytics:report", args=[session.classroom_id])).content.decode()
    assert "Fractions" in page and "50%" in page and "data-print" in page
    assert "Parents of all 24 students" in page


def test_retention_reanalyse_and_delete_actions(web, session, model_version):
    classroom = session.classroom
    response = web.post(
        reverse("analytics:retention", args=[classroom.pk]), {"retention": "delete"}
    )
    assert response.status_code == 302  # no photo stored: nothing to confirm
    classroom.refresh_from_db()
    assert classroom.retention == "delete"
    response = web.post(
        reverse("analytics:detection", args=[classroom.pk]), {"detection_mode": "x"}
    )
    assert response.status_code == 400 and b"Select a valid choice" in response.content
    response = web.post(
        reverse("analytics:detection", args=[classroom.pk]), {"detection_mode": "thorough"}
    )
    assert response.status_code == 302
    classroom.refresh_from_db()
    assert classroom.detection_mode == "thorough"
    page = web.get(reverse("analytics:session", args=[session.pk])).content.decode()
    assert "Face detection: Thorough" in page
    add_results(session, ["Engaged"])
    response = web.post(reverse("analytics:session-reanalyse", args=[session.pk]), follow=True)
    assert b"1 photo(s) keep their current results" in response.content  # no original stored
    web.post(reverse("analytics:session-delete", args=[session.pk]))
    assert not Session.objects.exists()
    web.post(reverse("analytics:classroom-delete", args=[classroom.pk]))
    assert not Classroom.objects.exists()


def _pages(classroom, session, photo):
    c, s, p = classroom.pk, session.pk, photo.pk
    gets = [
        reverse("analytics:classroom", args=[c]), reverse("analytics:dashboard", args=[c]),
        reverse("analytics:report", args=[c]), reverse("analytics:session-create", args=[c]),
        reverse("analytics:session", args=[s]), reverse("analytics:photo-image", args=[p]),
        reverse("analytics:privacy-receipt", args=[c]),
    ]  # fmt: skip
    classroom_actions = ("consent", "retention", "detection", "face-detail", "classroom-delete")
    posts = [
        reverse(f"analytics:{name}", args=[c]) for name in (*classroom_actions, "session-create")
    ] + [reverse(f"analytics:{name}", args=[s]) for name in ("session-reanalyse", "session-delete")]
    return gets, posts


def test_another_teacher_gets_404_on_every_page_and_action(client, session, other_teacher):
    (photo,) = services.upload_photos(session, [upload("a.jpg", image_bytes())]).photos
    gets, posts = _pages(session.classroom, session, photo)
    client.force_login(other_teacher)
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url in posts:
        data = {"retention": "keep", "detection_mode": "thorough", "hide_face_detail": "on"}
        data["title"] = "x"
        assert client.post(url, data).status_code == 404, url
    assert Session.objects.filter(pk=session.pk).exists()
    assert Classroom.objects.get(pk=session.classroom_id).retention == "blur"
    assert Classroom.objects.get(pk=session.classroom_id).detection_mode == "fast"
    assert not Classroom.objects.get(pk=session.classroom_id).hide_face_detail
    assert b"7B" not in client.get(reverse("analytics:classrooms")).content


def test_anonymous_users_are_sent_to_login(client, session):
    photo = add_results(session, [])
    gets, posts = _pages(session.classroom, session, photo)
    for url in [reverse("analytics:classrooms"), *gets, *posts]:
        response = client.post(url) if url in posts else client.get(url)
        assert response.status_code == 302 and response.url.startswith("/login/"), url
    assert Session.objects.filter(pk=session.pk).exists()


def test_views_and_exports_are_logged_once_per_visit_and_survive_deletion(
    web, session, other_teacher, analyse
):
    (photo,) = analyse(session, upload("a.png", image_bytes("PNG")))
    classroom = session.classroom
    web.get(reverse("analytics:photo-image", args=[photo.pk]))  # opened on its own: a visit
    web.get(reverse("analytics:session", args=[session.pk]))
    web.get(reverse("analytics:photo-image", args=[photo.pk]))  # the session page's image
    web.get(reverse("analytics:dashboard", args=[classroom.pk]))
    web.get(reverse("analytics-api:session-export", args=[session.pk]))
    web.get(reverse("analytics-api:classroom-export", args=[classroom.pk]) + "?rows=faces")
    other = Client()
    other.force_login(other_teacher)
    assert other.get(reverse("analytics-api:session-export", args=[session.pk])).status_code == 404
    assert other.get(reverse("analytics:access-log", args=[classroom.pk])).status_code == 404
    records = list(AccessRecord.objects.order_by("id"))
    assert [(r.username, r.action) for r in records] == [
        ("alice", "viewed_photo"),
        ("alice", "viewed_session"),
        ("alice", "viewed_dashboard"),
        ("alice", "exported_csv"),
        ("alice", "exported_csv"),
    ]
    assert records[-1].detail == "classroom CSV (faces)"
    page = web.get(reverse("analytics:classroom", args=[classroom.pk])).content.decode()
    assert "Open the access log (5 records)" in page
    log = web.get(reverse("analytics:access-log", args=[classroom.pk])).content.decode()
    assert "Exported CSV" in log and "Page 1 of 1 (5 records)" in log
    classroom.delete()
    assert AccessRecord.objects.filter(classroom_name="7B", classroom=None).count() == 5


def test_access_log_is_paginated_newest_first(web, session):
    from analytics.views import ACCESS_LOG_PAGE

    for i in range(ACCESS_LOG_PAGE + 1):
        services.record_access(session.classroom.owner, "viewed_dashboard", session.classroom,
                               detail=f"visit {i}")  # fmt: skip
    url = reverse("analytics:access-log", args=[session.classroom_id])
    first = web.get(url).content.decode()
    assert f"visit {ACCESS_LOG_PAGE}<" in first and "visit 0<" not in first
    second = web.get(url, {"page": 2}).content.decode()
    assert "visit 0<" in second and "Page 2 of 2" in second


def test_teacher_pages_allow_a_strict_content_security_policy(web, session, model_version):
    from tests.strict_csp import assert_strict_csp_possible

    add_results(session, ["Engaged", "Bored"])
    classroom = session.classroom_id
    for url in [
        reverse("analytics:classrooms"),
        reverse("analytics:classroom", args=[classroom]),
        reverse("analytics:session", args=[session.pk]),
        reverse("analytics:dashboard", args=[classroom]),
        reverse("analytics:report", args=[classroom]),
    ]:
        response = web.get(url)
        assert response.status_code == 200, url
        assert_strict_csp_possible(response.content.decode(), url)


def test_new_classrooms_keep_a_blurred_copy_by_default_and_the_form_says_what_each_keeps(
    web, teacher
):
    from django.utils.html import escape

    from analytics.choices import RETENTION_KEEPS

    page = web.get(reverse("analytics:classrooms")).content.decode()
    checked = page.split('name="retention"')[1:]
    assert [("checked" in part.split(">")[0]) for part in checked] == [True, False, False]
    for text in RETENTION_KEEPS.values():
        assert escape(text) in page
    web.post(reverse("analytics:classrooms"), {"name": "9C", "retention": "blur"})
    assert Classroom.objects.get(owner=teacher).retention == "blur"
    assert Classroom.objects.create(owner=teacher, name="ORM").retention == "blur"


def _stored_photo(session, seed=0, state="original") -> Photo:
    """An analysed photo whose image file is still stored (kept or blurred)."""
    (photo,) = services.upload_photos(
        session, [upload(f"{seed}.jpg", image_bytes(seed=seed))]
    ).photos
    Photo.objects.filter(pk=photo.pk).update(status="done", image_state=state)
    photo.refresh_from_db()
    return photo


def test_tightening_retention_asks_first_and_says_how_many_photos_change(
    web, session, eager_celery, django_capture_on_commit_callbacks
):
    classroom = session.classroom
    classroom.retention = "keep"
    classroom.save()
    photos = [_stored_photo(session, seed) for seed in (1, 2)]
    url = reverse("analytics:retention", args=[classroom.pk])

    asked = web.post(url, {"retention": "delete"})
    text = asked.content.decode()
    assert asked.status_code == 200 and "Delete 2 stored photos now?" in text
    assert "cannot be undone" in text and 'name="confirmed" value="yes"' in text
    classroom.refresh_from_db()
    assert classroom.retention == "keep"
    assert all(Photo.objects.get(pk=p.pk).image for p in photos)  # nothing touched yet

    with django_capture_on_commit_callbacks(execute=True):
        done = web.post(url, {"retention": "delete", "confirmed": "yes"}, follow=True)
    assert b"Applying it to 2 photo(s) already analysed, in the background" in done.content
    assert set(Photo.objects.values_list("image_state", flat=True)) == {"deleted"}
    # Loosening again changes no stored photo: no question.
    assert web.post(url, {"retention": "keep"}).status_code == 302


def test_tightening_from_keep_to_blur_has_a_worker_store_the_protected_copy(
    web, session, media_root, eager_celery, django_capture_on_commit_callbacks
):
    from PIL import Image

    from ml.privacy import VERSION

    classroom = session.classroom
    classroom.retention = "keep"
    classroom.save()
    kept = Photo.objects.create(session=session, status="done", width=96, height=72)
    kept.image.save("kept.jpg", ContentFile(image_bytes(seed=4)))
    original = kept.image.name
    url = reverse("analytics:retention", args=[classroom.pk])
    with django_capture_on_commit_callbacks() as sent:
        web.post(url, {"retention": "blur", "confirmed": "yes"})
    # The request only queued the work: blurring decodes and encodes images, a worker's job.
    kept.refresh_from_db()
    assert kept.image_state == "original" and (media_root / original).exists()
    assert len(sent) == 1
    sent[0]()  # after the commit: the task, run eagerly as a worker would
    kept.refresh_from_db()
    assert kept.image_state == "blurred" and kept.privacy_version == VERSION
    assert not (media_root / original).exists()
    with kept.image.open("rb") as handle:
        copy = Image.open(handle)
        assert copy.format == "JPEG" and copy.size == (96, 72)


def test_tightening_from_blur_to_delete_removes_the_blurred_copies(
    session, media_root, eager_celery, django_capture_on_commit_callbacks
):
    classroom = session.classroom
    blurred = _stored_photo(session, 3, state="blurred")
    name = blurred.image.name
    with django_capture_on_commit_callbacks(execute=True):
        assert services.set_retention(classroom, "delete") == 1
    blurred.refresh_from_db()
    assert blurred.image_state == "deleted" and not blurred.image
    assert not (media_root / name).exists()


def test_a_classroom_too_large_for_one_time_limit_continues_in_a_new_message(
    session, media_root, eager_celery, django_capture_on_commit_callbacks
):
    photos = [_stored_photo(session, seed) for seed in (5, 6)]
    session.classroom.retention = "delete"
    session.classroom.save()
    with django_capture_on_commit_callbacks() as sent:
        # No time left: nothing is done, and the task is sent again for the rest.
        assert services.apply_classroom_retention(session.classroom_id, 1e-9) == 0
    assert len(sent) == 1 and all(Photo.objects.get(pk=p.pk).image for p in photos)
    sent[0]()
    assert set(Photo.objects.values_list("image_state", flat=True)) == {"deleted"}


def test_reanalyse_asks_first_and_is_offered_only_while_an_original_is_stored(
    web, session, model_version
):
    from classifier.models import ModelVersion

    add_results(session, ["Engaged"], version=model_version)  # its original was deleted
    page = web.get(reverse("analytics:session", args=[session.pk])).content.decode()
    assert 'id="reanalyse"' not in page
    url = reverse("analytics:session-reanalyse", args=[session.pk])
    nothing = web.get(url, follow=True)
    assert b"No stored original to analyse again" in nothing.content

    kept = _stored_photo(session, 4)
    ModelVersion.objects.filter(pk=model_version.pk).update(name="old model")
    page = web.get(reverse("analytics:session", args=[session.pk])).content.decode()
    assert f'href="{url}"' in page and 'id="reanalyse"' in page
    confirm = web.get(url).content.decode()
    assert "Re-analyse 1 photo of “Fractions”?" in confirm
    assert "old model" in confirm and "1 photo keeps its results" in confirm
    kept.refresh_from_db()
    assert kept.status == "done"  # asking changed nothing
    web.post(url)
    kept.refresh_from_db()
    assert kept.status == "queued"


def test_consent_recorded_from_a_session_returns_to_that_session(web, teacher):
    classroom = make_classroom(teacher, consent=False)
    session = Session.objects.create(classroom=classroom, title="Week 1")
    page = web.get(reverse("analytics:session", args=[session.pk])).content.decode()
    link = f"{reverse('analytics:classroom', args=[classroom.pk])}?session={session.pk}#consent"
    assert link in page
    form = web.get(link.split("#")[0]).content.decode()
    assert f'name="session" value="{session.pk}"' in form and "“Week 1”" in form
    body = {"obtained_from": "Parents", "method": "written", "obtained_on": "2024-09-01"}
    url = reverse("analytics:consent", args=[classroom.pk])
    invalid = web.post(url, {"session": session.pk})  # the form comes back with the return
    assert f'name="session" value="{session.pk}"' in invalid.content.decode()
    response = web.post(url, {**body, "session": session.pk})
    assert response.url == reverse("analytics:session", args=[session.pk])
    # A session of another classroom is not a place to return to.
    elsewhere = Session.objects.create(classroom=make_classroom(teacher), title="x")
    response = web.post(url, {**body, "session": elsewhere.pk})
    assert response.url == reverse("analytics:classroom", args=[classroom.pk])


def _note(page: bytes) -> str:
    return page.decode().split('id="estimate-note"')[1].split("</p>")[0]


def test_teachers_see_a_warning_not_a_number_for_a_flagged_or_unmeasured_model(
    web, session, model_version
):
    from classifier.models import ModelVersion
    from classifier.services import promote, record_measurement
    from ml.scorecard import MeasuredOn

    # The case: a one-class model scored on 24 faces of each class of its own upload.
    one_class = ModelVersion.objects.create(
        name="one-class", arch="edu-vgg-s", classes=["happy", "sad"], state_mapping={},
        normalisation="per-image", checkpoint="models/o.pt", checkpoint_sha256="o" * 64,
    )  # fmt: skip
    own = MeasuredOn("the validation split of mine v1", 48, False, None)
    metrics = {"confusion_matrix": [[24, 0], [23, 1]]}
    record_measurement(one_class, metrics, own, "training")
    promote(one_class, confirmed=True)
    url = reverse("analytics:session", args=[session.pk])
    page = web.get(url).content.decode()
    warning = page.split('id="model-warning"')[1].split("</div>")[0]
    assert "which analyses photos now" in warning and "“happy” for 98%" in warning
    assert "not a reliable signal" in warning
    assert "51.0%" not in _note(page.encode()) and "flagged" in _note(page.encode())
    # Unmeasured (own split, few faces) but not broken: no warning, no number either.
    record_measurement(one_class, {"confusion_matrix": [[20, 4], [4, 20]]}, own, "training")
    page = web.get(url).content
    assert b'id="model-warning"' not in page
    assert "not measured on a reference set" in _note(page) and "83.3%" not in _note(page)
    home = web.get(reverse("home")).content.decode()
    assert 'id="model-warning"' not in home


def test_the_disclaimer_names_the_model_that_produced_the_results_not_the_active_one(
    web, session, model_version
):
    from classifier.models import ModelVersion
    from classifier.services import promote

    add_results(session, ["Engaged", "Bored"], version=model_version)
    newer = ModelVersion.objects.create(
        name="newer model", arch="edu-vgg-s", classes=model_version.classes, state_mapping={},
        normalisation="per-image", checkpoint="models/n.pt", checkpoint_sha256="n" * 64,
        metrics={"accuracy": 0.61},
    )  # fmt: skip
    promote(measure_on_reference(newer, 0.61))
    pages = [
        reverse("analytics:session", args=[session.pk]),
        reverse("analytics:dashboard", args=[session.classroom_id]),
        reverse("analytics:report", args=[session.classroom_id]),
    ]
    for url in pages:
        note = _note(web.get(url).content)
        assert "test model" in note and "25.0%" in note, url  # the results' own model
        assert "newer model" not in note and "61.0%" not in note, url
    fresh = Session.objects.create(classroom=session.classroom, title="Not analysed yet")
    note = _note(web.get(reverse("analytics:session", args=[fresh.pk])).content)
    assert "photos analysed now go to the model" in note and "newer model" in note
    assert "61.0%" in note
