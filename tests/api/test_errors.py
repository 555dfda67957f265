"""One error body shape, whatever raised the error."""

import io
import sqlite3

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from rest_framework import exceptions

from edumood_site.api import error_body, exception_handler


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (["Only failed photos can be retried."], {"detail": "Only failed photos can be retried."}),
        ({"detail": "Not found."}, {"detail": "Not found."}),
        ({"non_field_errors": ["Bad dates.", "Too late."]}, {"detail": "Bad dates. Too late."}),
        ({"name": ["This field is required."]}, {"name": ["This field is required."]}),
        (
            {"non_field_errors": ["Bad pair."], "title": ["Too long."]},
            {"detail": "Bad pair.", "title": ["Too long."]},
        ),
        ({"detail": ["A", "B"]}, {"detail": "A B"}),
    ],
)
def test_error_body(data, expected):
    assert error_body(data) == expected


def test_protected_delete_is_a_409_not_a_500():
    response = exception_handler(ProtectedError("protected", set()), {})
    assert response.status_code == 409
    assert response.data == {
        "detail": "Other records still refer to this one; delete or move them first."
    }


def test_model_validation_from_a_service_is_a_400_with_fields():
    exc = DjangoValidationError({"obtained_on": ["Consent cannot be dated in the future."]})
    response = exception_handler(exc, {})
    assert response.status_code == 400
    assert response.data == {"obtained_on": ["Consent cannot be dated in the future."]}

    response = exception_handler(DjangoValidationError("Not a zip file."), {})
    assert response.data == {"detail": "Not a zip file."}


def test_drf_errors_keep_status_and_headers():
    response = exception_handler(exceptions.Throttled(wait=7), {})
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert set(response.data) == {"detail"}


def test_unexpected_exceptions_stay_server_errors():
    # Not swallowed: Django answers 500 and logs it, and the fuzz run reports it.
    assert exception_handler(KeyError("boom"), {}) is None


@pytest.fixture
def upload_target(make_user, token_client):
    """A teacher's token client and a session with consent, ready for uploads."""
    from analytics.models import Session
    from tests.analytics.conftest import make_classroom

    teacher = make_user("teacher")
    session = Session.objects.create(classroom=make_classroom(teacher), title="x")
    return token_client(teacher), f"/api/sessions/{session.pk}/photos/"


@pytest.mark.django_db
def test_more_files_than_the_parser_allows_is_a_json_400(upload_target, settings):
    client, url = upload_target
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    parts = {"image": [io.BytesIO(b"x") for _ in range(3)]}
    response = client.post(url, parts, format="multipart")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "Too many files in one request" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_a_database_lock_beyond_the_timeout_is_a_json_503_with_retry_after(
    make_user, token_client, settings
):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("holds an SQLite write lock")
    client = token_client(make_user("teacher"))
    connection.close()
    connection.settings_dict["OPTIONS"]["timeout"] = 0.2  # the lock wait, shortened for a test
    holder = sqlite3.connect(connection.settings_dict["NAME"])
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process mid-write
        response = client.post("/api/classrooms/", {"name": "8A"}, format="json")
    finally:
        holder.rollback()
        holder.close()
        connection.close()
        connection.settings_dict["OPTIONS"]["timeout"] = 30
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"detail": "The database is busy; retry in a few seconds."}
