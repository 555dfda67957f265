"""Every date filter, in the API and on the pages, answers a bound the database cannot store
(0001-01-01T00:00:00+14:00 is in year 0 once in UTC) with a 400 and a message, never a 500."""

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.analytics.conftest import add_results

pytestmark = pytest.mark.django_db

EXTREMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
OUT_OF_RANGE = "is outside the years 1 to 9999 once converted to UTC."
# Query variants of one operation that read the dates along another path.
VARIANTS = {"/api/classrooms/{id}/export.csv": [{}, {"rows": "faces"}]}


def date_filters() -> list[tuple[str, str]]:
    """(path, parameter) of every date or date-time query parameter of a GET in the schema."""
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    found = []
    for path, operations in schema.json()["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("format") in (
                "date",
                "date-time",
            ):
                found.append((path, parameter["name"]))
    return found


def test_every_api_date_filter_refuses_an_unstorable_bound_with_a_400(teacher, session):
    add_results(session, ["Engaged", "Bored"])
    api = APIClient()
    api.force_authenticate(teacher)
    filters = date_filters()
    # The ones known today; a new date filter joins the probe by being in the schema.
    assert {(p, n) for p, n in filters} >= {
        ("/api/classrooms/{id}/trends/", "after"),
        ("/api/classrooms/{id}/trends/", "before"),
        ("/api/classrooms/{id}/export.csv", "after"),
        ("/api/classrooms/{id}/export.csv", "before"),
        ("/api/sessions/", "after"),
        ("/api/sessions/", "before"),
    }
    probes = 0
    for path, name in filters:
        pk = session.pk if path.startswith("/api/sessions/") else session.classroom_id
        for extra in VARIANTS.get(path, [{}]):
            for value in EXTREMES:
                url = path.replace("{id}", str(pk))
                response = api.get(url, {**extra, name: value})
                where = f"{url} {extra} {name}={value}"
                assert response.status_code == 400, where
                body = json.loads(response.content)  # the CSV routes send it as text/csv
                message = body.get("detail") or body[name][0]
                assert OUT_OF_RANGE in message and value in message, (where, body)
                probes += 1
    assert probes >= 16


@pytest.mark.parametrize("page", ["analytics:dashboard", "analytics:report"])
@pytest.mark.parametrize(
    ("zone", "query", "message"),
    [
        ("Etc/GMT-14", {"after": "0001-01-01"}, OUT_OF_RANGE),  # UTC+14 (POSIX signs)
        ("Etc/GMT+12", {"before": "9999-12-31"}, OUT_OF_RANGE),  # UTC-12
        ("UTC", {"after": EXTREMES[0]}, "Enter a valid date."),  # the pages take days
    ],
)
def test_the_pages_date_range_says_what_is_wrong_instead_of_failing(
    client, teacher, session, settings, page, zone, query, message
):
    settings.TIME_ZONE = zone
    add_results(session, ["Engaged", "Bored"])
    client.force_login(teacher)
    response = client.get(reverse(page, args=[session.classroom_id]), query)
    assert response.status_code == 400
    error = response.content.decode().split('id="range-error">')[1].split("</div>")[0]
    assert error.startswith("The date range was not applied: ") and message in error
