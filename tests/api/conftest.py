"""Users, token-authenticated clients and throttle hygiene for the API tests."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.services import issue_token

PASSWORD = "a-long-test-password-9"


@pytest.fixture(autouse=True)
def fresh_throttles(db):
    """Empty throttle and log-in counters at the start of each test.

    They live in the database cache: a test's rollback removes its own counters, but a
    transactional test elsewhere in the run may have left some behind.
    """
    cache.clear()


@pytest.fixture
def make_user(django_user_model):
    def make(username, *, staff=False):
        return django_user_model.objects.create_user(
            username=username, password=PASSWORD, is_staff=staff
        )

    return make


@pytest.fixture
def token_client():
    """An APIClient that sends `Authorization: Token <new token of user>` (anonymous for None)."""

    def make(user=None):
        client = APIClient()
        if user is not None:
            _, key = issue_token(user, "test")
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    return make
