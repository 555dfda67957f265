"""API tokens: obtain, use, list, revoke; hashed at rest; throttled; the settings page."""

import hashlib
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import issue_token

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"
TOKENS_URL = "/api/auth/tokens/"


@pytest.fixture
def teacher(make_user):
    return make_user("teacher")


def obtain(client, username, password=PASSWORD, **extra):
    return client.post(TOKEN_URL, {"username": username, "password": password, **extra}, "json")


def test_obtain_then_use_token(teacher):
    client = APIClient()
    response = obtain(client, "teacher", name="notebook")
    assert response.status_code == 201
    key = response.json()["token"]
    assert key.startswith("edm_") and len(key) > 40

    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    listed = client.get(TOKENS_URL)
    assert listed.status_code == 200
    rows = listed.json()["results"]
    assert [(row["name"], row["prefix"]) for row in rows] == [("notebook", key[:10])]
    assert "token" not in rows[0] and "key_hash" not in rows[0]


def test_token_is_stored_only_as_its_sha256(teacher):
    key = obtain(APIClient(), "teacher").json()["token"]
    token = ApiToken.objects.get(user=teacher)
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    stored = [str(getattr(token, field.attname)) for field in ApiToken._meta.fields]
    assert not any(key in value for value in stored)
    assert token.prefix == key[:10]


def test_each_obtain_creates_another_named_token(teacher):
    first = obtain(APIClient(), "teacher", name="lms").json()["token"]
    second = obtain(APIClient(), "teacher", name="notebook").json()["token"]
    assert first != second
    assert sorted(teacher.api_tokens.values_list("name", flat=True)) == ["lms", "notebook"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"username": "teacher", "password": "wrong"},
            {"detail": "Unable to log in with the given username and password."},
        ),
        (
            {"username": "nobody", "password": PASSWORD},
            {"detail": "Unable to log in with the given username and password."},
        ),
        ({"username": "teacher"}, {"password": ["This field is required."]}),
    ],
)
def test_bad_credentials_answer_400_in_the_error_shape(teacher, body, expected):
    response = APIClient().post(TOKEN_URL, body, "json")
    assert response.status_code == 400
    assert response.json() == expected
    assert not ApiToken.objects.exists()


def test_inactive_user_gets_no_token_and_their_tokens_stop_working(teacher):
    _, key = issue_token(teacher, "old")
    teacher.is_active = False
    teacher.save()
    refused = obtain(APIClient(), "teacher")
    assert refused.status_code == 400
    # The right password of a deactivated account is told so, and whom to ask (issue 23).
    assert "Your account is deactivated" in str(refused.json())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(TOKENS_URL).status_code == 401


@pytest.mark.parametrize(
    "header",
    [None, "Token edm_not-a-real-token", "Token", "Token two parts", "Bearer edm_x"],
)
def test_missing_or_invalid_token_is_401_with_challenge(header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(TOKENS_URL)
    if header and header.startswith("Bearer"):
        # Another scheme is not ours to judge: the request is simply unauthenticated.
        assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert set(response.json()) == {"detail"}


def test_revoke_through_api_stops_the_token_at_once(teacher, token_client):
    client = token_client(teacher)
    token = teacher.api_tokens.get()
    assert client.delete(f"{TOKENS_URL}{token.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    response = client.get(TOKENS_URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked token."}


def test_another_users_token_is_404_in_the_api(teacher, make_user, token_client):
    other_token, _ = issue_token(make_user("other"), "theirs")
    client = token_client(teacher)
    assert client.get(f"{TOKENS_URL}{other_token.pk}/").status_code == 404
    assert client.delete(f"{TOKENS_URL}{other_token.pk}/").status_code == 404
    other_token.refresh_from_db()
    assert other_token.revoked_at is None
    assert [row["name"] for row in client.get(TOKENS_URL).json()["results"]] == ["test"]


def test_last_used_is_recorded_at_most_once_a_minute(teacher, token_client):
    client = token_client(teacher)
    token = teacher.api_tokens.get()
    assert token.last_used_at is None
    client.get(TOKENS_URL)
    token.refresh_from_db()
    first_use = token.last_used_at
    assert first_use is not None

    client.get(TOKENS_URL)
    token.refresh_from_db()
    assert token.last_used_at == first_use

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first_use - timedelta(minutes=2))
    client.get(TOKENS_URL)
    token.refresh_from_db()
    assert token.last_used_at > first_use - timedelta(seconds=1)


def test_token_requests_are_throttled_by_the_configured_rate(teacher, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"token": "3/min", "uploads": "120/min"},
    }
    client = APIClient()
    statuses = [obtain(client, "teacher").status_code for _ in range(3)]
    # Failed attempts count too: the throttle is what slows down password guessing.
    statuses.append(obtain(client, "teacher", password="guess").status_code)
    assert statuses == [201, 201, 201, 429]
    throttled = obtain(client, "teacher")
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert set(throttled.json()) == {"detail"}
    assert teacher.api_tokens.count() == 3


def test_session_auth_still_works_and_needs_csrf_for_writes(teacher):
    token, _ = issue_token(teacher, "to revoke")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(teacher)
    assert client.get(TOKENS_URL).status_code == 200
    response = client.delete(f"{TOKENS_URL}{token.pk}/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


# The settings page


def test_settings_page_creates_a_token_and_shows_the_secret_once(client, teacher):
    client.force_login(teacher)
    url = reverse("accounts:tokens")
    response = client.post(url, {"name": "grading notebook"}, follow=True)
    assert response.status_code == 200
    token = teacher.api_tokens.get()
    page = response.content.decode()
    secret = response.context["new_token"]["key"]
    assert secret in page and token.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert "grading notebook" in page and f"{token.prefix}…" in page

    again = client.get(url).content.decode()
    assert secret not in again and f"{token.prefix}…" in again
    assert teacher.api_tokens.count() == 1

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    assert api.get(TOKENS_URL).status_code == 200


def test_settings_page_lists_only_own_tokens_and_revokes(client, teacher, make_user):
    mine, key = issue_token(teacher, "mine")
    theirs, _ = issue_token(make_user("other"), "theirs")
    client.force_login(teacher)
    page = client.get(reverse("accounts:tokens")).content.decode()
    assert "mine" in page and "theirs" not in page

    assert client.post(reverse("accounts:revoke", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("accounts:revoke", args=[mine.pk])).status_code == 405
    response = client.post(reverse("accounts:revoke", args=[mine.pk]), follow=True)
    assert "revoked" in response.content.decode()
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None and mine.revoked_at <= timezone.now()
    assert theirs.revoked_at is None

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(TOKENS_URL).status_code == 401


def test_settings_page_needs_login(client):
    response = client.get(reverse("accounts:tokens"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_settings_page_rejects_an_empty_name(client, teacher):
    client.force_login(teacher)
    response = client.post(reverse("accounts:tokens"), {"name": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not teacher.api_tokens.exists()
