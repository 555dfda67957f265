"""Limits on failed log-ins, per account and per client address, shared by all web processes.

Every way in (the API's token endpoint, the browser's /login/, the Django admin's login)
authenticates through django.contrib.auth: failures are counted from its `user_login_failed`
signal, and each entry point asks `retry_after` before it tries a password. The counters live
in the default cache (the database, or Redis in production), so `gunicorn -w N` has one set,
not N. Windows are fixed (a counter per window, incremented atomically), so a check costs one
cache read per limit and a failure one increment.
"""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle


def client_address(request) -> str:
    """The caller's address: the peer's, unless EDUMOOD_TRUSTED_PROXIES proxies stand in front.

    DRF's throttles identify clients the same way (NUM_PROXIES is set from that setting), so
    an X-Forwarded-For written by the client itself never changes who it is.
    """
    return BaseThrottle().get_ident(request) or ""


def _limits(request, username: str) -> list[tuple[str, str]]:
    """(counter name, rate) for each limit that applies to this attempt."""
    limits = [(f"account:{username.casefold()}", settings.EDUMOOD_LOGIN_ACCOUNT_RATE)]
    if request is not None:
        limits.append((f"address:{client_address(request)}", settings.EDUMOOD_LOGIN_ADDRESS_RATE))
    return limits


def _window(name: str, rate: str, now: float) -> tuple[str, int, float]:
    """The cache key of the current window, the failures it allows and when it ends."""
    allowed, seconds = SimpleRateThrottle.parse_rate(None, rate)
    index = int(now // seconds)
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    return f"login-failures:{digest}:{seconds}:{index}", allowed, (index + 1) * seconds


def retry_after(request, username: str) -> int:
    """Seconds until a log-in as `username` from this client may be tried; 0 for now."""
    now = time.time()
    windows = [_window(name, rate, now) for name, rate in _limits(request, username)]
    counts = cache.get_many([key for key, _, _ in windows])
    wait = max(
        (ends - now for key, allowed, ends in windows if counts.get(key, 0) >= allowed),
        default=0,
    )
    return math.ceil(wait)


def record_failure(request, username: str) -> None:
    """Count one failed log-in against the account and the client address."""
    now = time.time()
    for name, rate in _limits(request, username):
        key, _, ends = _window(name, rate, now)
        timeout = math.ceil(ends - now) + 1
        # add() creates the counter only if it is missing, so concurrent first failures in
        # several processes all land on the one counter; incr() is atomic in Redis.
        cache.add(key, 0, timeout)
        try:
            cache.incr(key)
        except ValueError:  # the window ended between add() and incr()
            cache.set(key, 1, timeout)


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """`user_login_failed` receiver: count failures of requests, not of scripts or commands."""
    from django.contrib.auth import get_user_model

    username = credentials.get(get_user_model().USERNAME_FIELD)
    if request is not None and username:
        record_failure(request, str(username))


def wait_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"Too many failed log-ins. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
