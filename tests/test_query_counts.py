"""List pages and API lists make a fixed number of queries, however many rows they show."""

from datetime import date

import pytest
from django.urls import reverse

from analytics.models import Classroom, Consent
from classifier.models import Dataset, DatasetVersion

pytestmark = pytest.mark.django_db

# Lists: measured with 1 row; the same budget must hold for 50 (an N+1 query would blow it).
# The session detail: measured once its summary is read once (14 when read per field).
BUDGETS = {"/api/classrooms/": 6, "classrooms": 8, "/api/datasets/": 6, "/api/sessions/<id>/": 10}


def _classrooms(owner, n: int) -> None:
    for i in range(n):
        classroom = Classroom.objects.create(owner=owner, name=f"Class {i}")
        for day in (1, 2):
            Consent.objects.create(
                classroom=classroom, obtained_from="parents", method="written",
                obtained_on=date(2024, 9, day), recorded_by=owner,
            )  # fmt: skip


def _datasets(n: int) -> None:
    for i in range(n):
        dataset = Dataset.objects.create(name=f"faces {i}")
        for number in (1, 2):
            DatasetVersion.objects.create(
                dataset=dataset, number=number, content_hash=f"{i}-{number}",
                cache=f"datasets/{i}-{number}.npz", class_counts={"happy": number},
            )  # fmt: skip


@pytest.mark.parametrize("rows", [1, 50])
def test_classroom_lists_do_not_query_per_row(
    rows, client, django_user_model, django_assert_max_num_queries
):
    teacher = django_user_model.objects.create_user("teacher", password="pw-for-tests-1")
    _classrooms(teacher, rows)
    client.force_login(teacher)
    with django_assert_max_num_queries(BUDGETS["/api/classrooms/"]):
        body = client.get("/api/classrooms/").json()
    assert body["count"] == rows
    assert all(c["consent"]["obtained_on"] == "2024-09-02" for c in body["results"])
    assert body["results"][0]["consent"]["recorded_by"] == "teacher"
    with django_assert_max_num_queries(BUDGETS["classrooms"]):
        page = client.get(reverse("analytics:classrooms"))
    assert page.content.decode().count("2 Sep 2024") == rows


@pytest.mark.parametrize("rows", [1, 50])
def test_the_dataset_list_does_not_query_per_row(
    rows, client, django_user_model, django_assert_max_num_queries
):
    admin = django_user_model.objects.create_user("boss", password="pw-1-boss", is_staff=True)
    _datasets(rows)
    client.force_login(admin)
    with django_assert_max_num_queries(BUDGETS["/api/datasets/"]):
        body = client.get("/api/datasets/").json()
    assert body["count"] == rows
    assert all(d["class_counts"] == {"happy": 2} for d in body["results"])


def test_the_polled_session_detail_reads_its_summary_once(
    client, django_user_model, django_assert_max_num_queries
):
    """The session page polls this every few seconds while photos are analysed: its summary
    and model versions serve `summary`, `model_versions` and `uncorrected_reason` from one
    read each."""
    from django.utils import timezone

    from analytics.models import Session

    teacher = django_user_model.objects.create_user("teacher", password="pw-for-tests-1")
    _classrooms(teacher, 1)
    session = Session.objects.create(
        classroom=teacher.classrooms.get(), title="Lesson", started_at=timezone.now()
    )
    client.force_login(teacher)
    with django_assert_max_num_queries(BUDGETS["/api/sessions/<id>/"]):
        body = client.get(f"/api/sessions/{session.pk}/").json()
    assert body["uncorrected_reason"] == "no faces analysed yet"
