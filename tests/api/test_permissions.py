"""Permission matrix: every endpoint and method against anonymous, two teachers and an admin.

The table is data: (method, path template, body) -> the exact status for each role. Teacher A
owns every object a path names (admin objects belong to the admin), so teacher B and the admin
must get 404 on A's objects (never 403: ids do not leak) and teachers 403 on admin endpoints.
Rows whose endpoint is not routed yet are skipped with the reason found by URL resolution, so
they run by themselves once the endpoint exists.
"""

import re
from dataclasses import dataclass
from typing import Any

import pytest

from . import world as w

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "teacher_a", "teacher_b", "admin")


def everyone(status: int) -> dict:
    """Any logged-in user may do it (on their own data)."""
    return {"anonymous": 401, "teacher_a": status, "teacher_b": status, "admin": status}


def owner(status: int) -> dict:
    """Only teacher A, who owns the object; everyone else must not learn it exists."""
    return {"anonymous": 401, "teacher_a": status, "teacher_b": 404, "admin": 404}


def staff(status: int) -> dict:
    return {"anonymous": 401, "teacher_a": 403, "teacher_b": 403, "admin": status}


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expected: dict
    body: Any = None  # a callable of the World, for bodies that name objects
    multipart: bool = False


def session_of_a(world):
    return w.session_body(world["classroom"])


def job_start(world):
    return {
        "kind": "evaluate",
        "model_version": world["model_version"],
        "dataset_version": world["dataset_version"],
    }


MATRIX = [
    # Tokens and docs
    Row("POST", "/api/auth/token/", dict.fromkeys(ROLES, 201), lambda _: w.token_body()),
    Row("GET", "/api/auth/tokens/", everyone(200)),
    Row("GET", "/api/auth/tokens/{token}/", owner(200)),
    Row("DELETE", "/api/auth/tokens/{token}/", owner(204)),
    Row("GET", "/api/schema/", dict.fromkeys(ROLES, 200)),
    Row("GET", "/api/docs/", dict.fromkeys(ROLES, 200)),
    # Teachers: classrooms
    Row("GET", "/api/classrooms/", everyone(200)),
    Row("POST", "/api/classrooms/", everyone(201), lambda _: w.CLASSROOM_BODY),
    Row("GET", "/api/classrooms/{classroom}/", owner(200)),
    Row("PATCH", "/api/classrooms/{classroom}/", owner(200), lambda _: {"name": "Renamed"}),
    Row("DELETE", "/api/classrooms/{classroom}/", owner(204)),
    Row("POST", "/api/classrooms/{bare_classroom}/consent/", owner(201), lambda _: w.CONSENT_BODY),
    Row("GET", "/api/classrooms/{classroom}/trends/", owner(200)),
    Row("GET", "/api/classrooms/{classroom}/activities/", owner(200)),
    Row("GET", "/api/classrooms/{classroom}/export.csv", owner(200)),
    # Teachers: sessions and photos
    Row("GET", "/api/sessions/", everyone(200)),
    # Another teacher cannot attach a session to A's classroom: a validation error, not 201.
    Row(
        "POST",
        "/api/sessions/",
        {"anonymous": 401, "teacher_a": 201, "teacher_b": 400, "admin": 400},
        session_of_a,
    ),
    Row("GET", "/api/sessions/{session}/", owner(200)),
    Row("PATCH", "/api/sessions/{session}/", owner(200), lambda _: {"title": "Decimals"}),
    Row("PATCH", "/api/sessions/{session}/", owner(200), lambda _: {"note": "Quiz first"}),
    Row("DELETE", "/api/sessions/{session}/", owner(204)),
    Row("POST", "/api/sessions/{session}/photos/", owner(202), lambda _: w.photo_upload(), True),
    # A classroom without a consent record takes no uploads.
    Row(
        "POST",
        "/api/sessions/{bare_session}/photos/",
        {"anonymous": 401, "teacher_a": 409, "teacher_b": 404, "admin": 404},
        lambda _: w.photo_upload(),
        True,
    ),
    Row("POST", "/api/sessions/{session}/reanalyse/", owner(202)),
    Row("GET", "/api/sessions/{session}/export.csv", owner(200)),
    Row("GET", "/api/photos/", everyone(200)),
    Row("GET", "/api/photos/{photo}/", owner(200)),
    # The photo is still queued: the owner reaches the action, which refuses with 409.
    Row("POST", "/api/photos/{photo}/retry/", owner(409)),
    # Admins: datasets, jobs, model versions, audits
    Row("GET", "/api/datasets/", staff(200)),
    Row("POST", "/api/datasets/", staff(202), lambda _: w.dataset_upload(), True),
    Row("GET", "/api/datasets/{dataset}/", staff(200)),
    Row("GET", "/api/jobs/", staff(200)),
    Row("POST", "/api/jobs/", staff(202), job_start),
    Row("GET", "/api/jobs/{job}/", staff(200)),
    Row("POST", "/api/jobs/{job}/cancel/", staff(202)),
    # The import job has not ended: retry refuses with 409.
    Row("POST", "/api/jobs/{job}/retry/", staff(409)),
    Row("GET", "/api/model-versions/", staff(200)),
    Row("GET", "/api/model-versions/{model_version}/", staff(200)),
    Row("POST", "/api/model-versions/{model_version}/promote/", staff(200)),
    Row("GET", "/api/audits/", staff(200)),
    Row("GET", "/api/audits/{audit}/", staff(200)),
    # Admins: people's accounts
    Row("GET", "/api/people/", staff(200)),
    Row("POST", "/api/people/", staff(201), lambda _: {"username": "new.teacher"}),
    Row("GET", "/api/people/{person}/", staff(200)),
    Row("PATCH", "/api/people/{person}/", staff(200), lambda _: {"is_active": False}),
    Row("PATCH", "/api/people/{person}/", staff(200), lambda _: {"is_staff": True}),
    Row("POST", "/api/people/{person}/unlock/", staff(200)),
    # A staff admin must not take over a superuser: refused with the reason (400), not done.
    Row("PATCH", "/api/people/{superuser}/", staff(400), lambda _: {"is_active": False}),
    Row("PATCH", "/api/people/{superuser}/", staff(400), lambda _: {"is_staff": False}),
    Row("POST", "/api/people/{superuser}/unlock/", staff(200)),
]

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def cases() -> list:
    return [
        pytest.param(row, role, id=f"{row.method} {row.path} {role}")
        for row in MATRIX
        for role in ROLES
    ]


@pytest.fixture
def users(make_user):
    return {
        "anonymous": None,
        "teacher_a": make_user("teacher_a"),
        "teacher_b": make_user("teacher_b"),
        "admin": make_user("admin", staff=True),
    }


@pytest.fixture
def world(users, token_client, request):
    clients = {role: token_client(user) for role, user in users.items()}
    return w.World(users, clients, request)


@pytest.mark.parametrize(("row", "role"), cases())
def test_permission_matrix(row, role, world):
    path = PLACEHOLDER.sub(lambda m: str(world[m.group(1)]), row.path)
    body = row.body(world) if row.body else None
    response = world.call(role, row.method, path, body, multipart=row.multipart)
    expected = row.expected[role]
    assert response.status_code == expected, (
        f"{row.method} {path} as {role}: expected {expected}, got {response.status_code}: "
        f"{response.content[:300]!r}"
    )
    if expected >= 400 and response["Content-Type"].startswith("application/json"):
        body = response.json()
        assert isinstance(body, dict) and body, body
        if expected != 400:
            assert isinstance(body.get("detail"), str), body


def test_matrix_covers_every_routed_api_endpoint():
    """A new endpoint must get rows here: compare the schema's operations with the table."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    in_schema = {
        (method.upper(), PLACEHOLDER.sub("{}", path))
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    in_matrix = {(row.method, PLACEHOLDER.sub("{}", row.path)) for row in MATRIX}
    assert in_schema - in_matrix == set()


LISTS = ["/api/classrooms/", "/api/sessions/", "/api/photos/", "/api/auth/tokens/"]


@pytest.mark.parametrize("path", LISTS)
def test_lists_and_filters_never_show_another_teachers_objects(path, world):
    owned = {
        "/api/classrooms/": ("classroom", "bare_classroom"),
        "/api/sessions/": ("session", "bare_session"),
        "/api/photos/": ("photo",),
        "/api/auth/tokens/": ("token",),
    }[path]
    a_ids = {world[name] for name in owned}
    mine = world.call("teacher_a", "GET", path).json()["results"]
    assert a_ids <= {item["id"] for item in mine}
    for role in ("teacher_b", "admin"):
        seen = world.call(role, "GET", path).json()["results"]
        assert not a_ids & {item["id"] for item in seen}, (role, path)
    if path == "/api/sessions/":
        # Filtering by A's classroom must not reveal A's sessions to B either.
        response = world.call("teacher_b", "GET", f"{path}?classroom={world['classroom']}")
        assert response.status_code in (200, 400)
        assert response.status_code == 400 or response.json()["results"] == []
