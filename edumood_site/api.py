"""What every API endpoint shares: the error body shape, documented errors, throttling by
scope, and the OpenAPI schema and docs URLs (included under /api/ in urls.py)."""

from django.conf import settings
from django.core.exceptions import (
    NON_FIELD_ERRORS,
    ImproperlyConfigured,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.db.models import ProtectedError, RestrictedError
from django.urls import path
from drf_spectacular import openapi
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    """409: the request is valid but the resource's state forbids it (e.g. no consent yet)."""

    status_code = 409
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class DatabaseBusy(exceptions.APIException):
    """503: a lock was not granted in time; the same request may well succeed shortly."""

    status_code = 503
    default_detail = "The database is busy; retry in a few seconds."
    default_code = "database_busy"
    wait = 5  # seconds, sent as Retry-After


# SQLSTATEs of PostgreSQL errors that mean "not now" rather than "wrong": lock_not_available,
# deadlock_detected, serialization_failure.
_RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001"}


def is_lock_timeout(exc: BaseException) -> bool:
    """True for a database error that a retry can cure: a lock not granted in time."""
    if not isinstance(exc, OperationalError):
        return False
    if getattr(exc.__cause__, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


def _request_too_large(exc) -> exceptions.ParseError:
    # Django's request parser raises these as SuspiciousOperation, which Django itself would
    # answer with its HTML 400 page.
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return exceptions.ParseError(
            f"Too many files in one request (at most {limit} parts); send them in batches of "
            f"at most {settings.EDUMOOD_MAX_FILES_PER_BATCH}."
        )
    if isinstance(exc, TooManyFieldsSent):
        return exceptions.ParseError("Too many form fields in one request.")
    return exceptions.ParseError("The request's form fields are too large.")


def _message(value) -> str:
    if isinstance(value, list | tuple):
        return " ".join(_message(item) for item in value)
    if isinstance(value, dict):
        return " ".join(f"{key}: {_message(item)}" for key, item in value.items())
    return str(value)


def error_body(data):
    """One error shape: `{"detail": "..."}`, or per-field errors `{"field": ["..."], ...}`.

    Errors about the request as a whole (`non_field_errors`, a Django form's `__all__`, a bare
    list from `ValidationError("...")`) become `detail`, so clients read one key for them.
    """
    if isinstance(data, list):
        return {"detail": _message(data)}
    if not isinstance(data, dict):
        return {"detail": str(data)}
    body = dict(data)
    general = [
        body.pop(key)
        for key in (api_settings.NON_FIELD_ERRORS_KEY, NON_FIELD_ERRORS)
        if key in body
    ]
    if general:
        body["detail"] = _message(general)
    if isinstance(body.get("detail"), list | dict):
        body["detail"] = _message(body["detail"])
    return body


def exception_handler(exc, context):
    """DRF's handler with one body shape, plus 409/400/503 for errors raised below the API layer.

    A delete blocked by a protected foreign key, a model's own validation and a request over
    the parser's limits are the client's problem, and a lock timeout is a temporary one, not a
    server error, wherever they surface.
    """
    if isinstance(exc, ProtectedError | RestrictedError):
        exc = Conflict("Other records still refer to this one; delete or move them first.")
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, TooManyFilesSent | TooManyFieldsSent | RequestDataTooBig):
        exc = _request_too_large(exc)
    elif is_lock_timeout(exc):
        exc = DatabaseBusy()
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = error_body(response.data)
    return response


class SettingsRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle that reads its rate when a request arrives.

    DRF copies DEFAULT_THROTTLE_RATES into the class at import time, so a rate changed later
    (an overridden setting in a test, a reloaded configuration) would be ignored.
    """

    def get_rate(self):
        rates = api_settings.DEFAULT_THROTTLE_RATES
        if self.scope not in rates:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}.")
        return rates[self.scope]


ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "Each invalid field maps to a list of messages; errors about the request as "
    "a whole are in `detail`.",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {},
}
ERROR_DESCRIPTIONS = {
    400: "Invalid request: per-field errors, or `detail`.",
    401: "No credentials, or an invalid or revoked token.",
    403: "Not allowed: an admin-only endpoint, or a browser session request without CSRF token.",
    404: "No such object, or it belongs to another user (never 403, so ids do not leak).",
    409: "The object's state forbids this (e.g. other records still refer to it).",
    429: "Too many requests: retry after the seconds in the `Retry-After` header.",
    503: "The database is busy: retry after the seconds in the `Retry-After` header.",
}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, with the errors every endpoint can answer documented.

    Endpoints declare their specific errors (409 without consent, ...) with extend_schema;
    the common ones follow from the view: authentication and permissions give 401/403, a path
    parameter 404, a request body 400, a throttle 429, a delete 409, and any of them a 503.
    """

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for code in self._common_error_codes(path):
            responses.setdefault(str(code), {"description": ERROR_DESCRIPTIONS[code]})
        for code, response in responses.items():
            # An error documented by its description alone still has the one error body.
            if code.startswith(("4", "5")) and not response.get("content"):
                response["content"] = {"application/json": {"schema": self._error_ref(code)}}
        return operation

    def _error_ref(self, code: str) -> dict:
        name, schema = (
            ("ValidationError", VALIDATION_ERROR_SCHEMA)
            if code == "400"
            else ("Error", ERROR_SCHEMA)
        )
        component = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema
        )
        self.registry.register_on_missing(component)
        return component.ref

    def _common_error_codes(self, path):
        codes = []
        if self.method in ("POST", "PUT", "PATCH"):
            codes.append(400)
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += [401, 403]
        if "{" in path:
            codes.append(404)
        if self.method == "DELETE":
            codes.append(409)
        if self.view.get_throttles():
            codes.append(429)
        codes.append(503)  # any request may meet a database lock
        return codes


# Imported last: these views resolve DEFAULT_SCHEMA_CLASS (the AutoSchema above) when defined.
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView  # noqa: E402

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
