"""What every API endpoint shares: the error body shape, documented errors, throttling by
scope, and the OpenAPI schema and docs URLs (included under /api/ in urls.py)."""

from django.core.exceptions import NON_FIELD_ERRORS, ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
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
    """DRF's handler with one body shape, plus 409/400 for errors raised below the API layer.

    A delete blocked by a protected foreign key and a model's own validation are the client's
    problem, not a server error, wherever in a service they surface.
    """
    if isinstance(exc, ProtectedError | RestrictedError):
        exc = Conflict("Other records still refer to this one; delete or move them first.")
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
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
}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, with the errors every endpoint can answer documented.

    Endpoints declare their specific errors (409 without consent, ...) with extend_schema;
    the common ones follow from the view: authentication and permissions give 401/403, a path
    parameter 404, a request body 400, a throttle 429, a delete 409.
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
        return codes


# Imported last: these views resolve DEFAULT_SCHEMA_CLASS (the AutoSchema above) when defined.
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView  # noqa: E402

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
