"""Password guessing is limited per account and per client address, on every way in."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"


@pytest.fixture
def limits(settings):
    """Small limits: 3 failures per account, 5 per address, an hour each."""
    settings.EDUMOOD_LOGIN_ACCOUNT_RATE = "3/hour"
    settings.EDUMOOD_LOGIN_ADDRESS_RATE = "5/hour"
    return settings


def obtain(username, password, address="10.0.0.1", forwarded=None):
    extra = {"REMOTE_ADDR": address}
    if forwarded:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return APIClient().post(
        TOKEN_URL, {"username": username, "password": password}, "json", **extra
    )


def browser_login(client, username, password, address="10.0.0.1", path="/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_a_forged_forwarded_for_header_does_not_escape_the_token_throttle(make_user, settings):
    make_user("teacher")
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"token": "3/min", "uploads": "120/min"},
    }
    statuses = [obtain("teacher", "guess", forwarded=f"192.0.2.{i}").status_code for i in range(4)]
    assert statuses == [400, 400, 400, 429]


def test_the_account_is_locked_after_its_failures_from_any_address(make_user, limits):
    teacher = make_user("teacher")
    for i in range(3):
        assert obtain("teacher", f"guess{i}", address=f"10.0.1.{i}").status_code == 400
    refused = obtain("teacher", PASSWORD, address="10.0.2.1")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "Too many failed log-ins" in refused.json()["detail"]
    assert teacher.api_tokens.count() == 0
    # Another account is not affected by this one's lock.
    make_user("other")
    assert obtain("other", PASSWORD, address="10.0.2.1").status_code == 201


def test_one_address_guessing_many_accounts_is_stopped(make_user, limits):
    make_user("teacher")
    for i in range(5):
        assert obtain(f"user{i}", "guess").status_code == 400
    assert obtain("teacher", PASSWORD).status_code == 429
    assert obtain("teacher", PASSWORD, address="10.9.9.9").status_code == 201


def test_with_one_trusted_proxy_the_address_it_saw_is_the_client(make_user, limits, settings):
    make_user("teacher")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "10.0.0.254"
    for i in range(5):
        # The client forges the left part; the proxy appends the address it really saw.
        forwarded = f"198.51.100.{i}, 203.0.113.7"
        assert obtain(f"user{i}", "guess", address=proxy, forwarded=forwarded).status_code == 400
    assert obtain("teacher", PASSWORD, address=proxy, forwarded="203.0.113.7").status_code == 429
    assert obtain("teacher", PASSWORD, address=proxy, forwarded="203.0.113.8").status_code == 201


def test_the_browser_login_is_limited_too(make_user, limits):
    make_user("teacher")
    client = Client()
    for i in range(3):
        assert browser_login(client, "teacher", f"guess{i}", f"10.0.3.{i}").status_code == 200
    refused = browser_login(client, "teacher", PASSWORD)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert b"Too many failed log-ins" in refused.content
    assert "_auth_user_id" not in client.session


def test_failures_in_the_browser_count_against_the_api_and_the_admin(make_user, limits):
    make_user("boss", staff=True)
    client = Client()
    for i in range(2):
        browser_login(client, "boss", f"guess{i}")
    assert obtain("boss", "guess").status_code == 400
    refused = browser_login(client, "boss", PASSWORD, path="/django-admin/login/")
    assert b"Too many failed log-ins" in refused.content
    assert "_auth_user_id" not in client.session


def test_a_correct_password_under_the_limit_logs_in(make_user, limits):
    make_user("teacher")
    client = Client()
    browser_login(client, "teacher", "typo")
    assert browser_login(client, "teacher", PASSWORD).status_code == 302
    assert client.session["_auth_user_id"]
