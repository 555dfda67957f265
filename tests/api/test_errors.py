"""One error body shape, whatever raised the error."""

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
