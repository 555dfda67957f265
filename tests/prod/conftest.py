"""One production stack (tests/prod/stack.py) for the whole `make test-prod` session."""

import os
from pathlib import Path

import pytest
import requests

from .stack import ProdStack

# Low enough for a test to reach with a few guesses; the default is 10/hour. The token
# endpoint's own throttle (20/min an address) is raised so that only the log-in limits answer.
LOGIN_PAIR_RATE = "6/hour"


@pytest.fixture(scope="session")
def stack():
    limits = {"EDUMOOD_LOGIN_PAIR_RATE": LOGIN_PAIR_RATE, "EDUMOOD_TOKEN_RATE": "1000/min"}
    with ProdStack(limits) as prod:
        yield prod


@pytest.fixture(autouse=True)
def show_logs_on_failure(request):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for name in ("stack", "bucket_stack"):
            if name in request.fixturenames:
                print(request.getfixturevalue(name).tails())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


class Api(requests.Session):
    """requests with the stack's base URL and a token."""

    def __init__(self, base: str, token: str | None = None):
        super().__init__()
        self.base = base
        if token:
            self.headers["Authorization"] = f"Token {token}"

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", 120)
        return super().request(method, self.base + url, *args, **kwargs)


@pytest.fixture(scope="session")
def tokens(stack):
    return stack.create_users(
        [("teacher", None, False), ("intruder", None, False), ("guarded", "Guarded-pass-9", False)]
    )


@pytest.fixture
def teacher(stack, tokens):
    return Api(stack.url, tokens["teacher"])


@pytest.fixture(scope="session")
def admin(stack):
    return Api(stack.url, stack.admin_token())


def group_photos(count: int) -> list[tuple[str, bytes]]:
    """Real classroom photos from the shared data when present, else generated images."""
    folder = Path(os.environ.get("EDUMOOD_DATA_DIR", Path(__file__).parents[3] / "shared/data"))
    images = sorted((folder / "group-photos" / "images").glob("*.jpg"))[:count]
    if len(images) == count:
        return [(path.name, path.read_bytes()) for path in images]
    from tests.analytics.conftest import image_bytes

    return [(f"generated{i}.jpg", image_bytes(size=(640, 480), seed=i)) for i in range(count)]
