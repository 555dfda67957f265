"""The OpenAPI schema: the contract's key paths exist, it validates, errors are documented,
and the interactive docs load only local files."""

import re
from html.parser import HTMLParser

import pytest
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

# The contract of issue 8: (path, methods). Path parameter names are not part of it.
CONTRACT = [
    ("/api/auth/token/", {"post"}),
    ("/api/classrooms/", {"get", "post"}),
    ("/api/classrooms/{id}/", {"get", "patch", "delete"}),
    ("/api/classrooms/{id}/consent/", {"post"}),
    ("/api/classrooms/{id}/trends/", {"get"}),
    ("/api/classrooms/{id}/export.csv", {"get"}),
    ("/api/sessions/", {"get", "post"}),
    ("/api/sessions/{id}/", {"get", "patch", "delete"}),
    ("/api/sessions/{id}/photos/", {"post"}),
    ("/api/sessions/{id}/export.csv", {"get"}),
    ("/api/photos/{id}/", {"get"}),
    ("/api/photos/{id}/retry/", {"post"}),
    ("/api/datasets/", {"get", "post"}),
    ("/api/datasets/{id}/", {"get"}),
    ("/api/jobs/", {"get", "post"}),
    ("/api/jobs/{id}/", {"get"}),
    ("/api/jobs/{id}/cancel/", {"post"}),
    ("/api/jobs/{id}/retry/", {"post"}),
    ("/api/model-versions/", {"get"}),
    ("/api/model-versions/{id}/", {"get"}),
    ("/api/model-versions/{id}/promote/", {"post"}),
    ("/api/audits/{id}/", {"get"}),
]
PARAMETER = re.compile(r"\{[^}]+\}")


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(("path", "methods"), CONTRACT, ids=[path for path, _ in CONTRACT])
def test_contract_path_is_in_schema(schema, path, methods):
    paths = {PARAMETER.sub("{}", p): operations for p, operations in schema["paths"].items()}
    key = PARAMETER.sub("{}", path)
    if key not in paths:
        pytest.fail(f"{path} is missing from the schema")
    assert methods <= set(paths[key]), f"{path}: has {sorted(paths[key])}, needs {sorted(methods)}"


def test_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    try:
        from openapi_spec_validator import validate
    except ImportError:
        import schemathesis

        loaded = schemathesis.openapi.from_dict(schema)
        loaded.validate()  # the OpenAPI 3.0 meta-schema, via jsonschema_rs
        # Every operation must also resolve (references, parameters) for the fuzz run.
        problems = [str(op.err()) for op in loaded.get_all_operations() if hasattr(op, "err")]
        assert problems == []
    else:
        validate(schema)


def test_token_auth_is_documented(schema):
    scheme = schema["components"]["securitySchemes"]["tokenAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert '"Token"' in scheme["description"]
    token = schema["paths"]["/api/auth/token/"]["post"]
    assert {"201", "400", "429"} <= set(token["responses"])
    assert token["security"] == [{}]


def test_every_operation_documents_its_errors(schema):
    """Authenticated operations document 401/403, object paths 404, bodies 400."""
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            codes = set(operation["responses"])
            needed = set()
            if {} not in operation.get("security", [{}]):
                needed |= {"401", "403"}
            if "{" in path:
                needed.add("404")
            if method in {"post", "put", "patch"} and operation.get("requestBody"):
                needed.add("400")
            if not needed <= codes:
                missing.append(f"{method.upper()} {path}: {sorted(needed - codes)}")
            for code in codes - {"200", "201", "202", "204"}:
                content = operation["responses"][code].get("content", {})
                assert content, f"{method.upper()} {path} {code} has no error body documented"
    assert missing == []


def test_error_bodies_share_one_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"] == {"detail": {"type": "string"}}
    assert error["required"] == ["detail"]


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


def test_docs_page_loads_only_local_files():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    parser = _Assets()
    parser.feed(html)
    assert parser.urls, "the docs page references no assets"
    for url in parser.urls:
        assert url.startswith("/"), f"external or relative asset {url}"
        assert not url.startswith("//"), f"protocol-relative (external) asset {url}"
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), f"{url} is not a static file"
    assert "swagger-ui-bundle.js" in html
    # Inline scripts may not fetch anything from another host either.
    assert not re.search(r"https?://(?!127\.0\.0\.1|localhost|testserver)", html)
