"""Site-wide pages: the home page and the health check."""

import math
import threading
import time

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from .celery import app as celery_app

# The broker and worker checks are shared by every caller for this long, so a burst of
# /healthz (anyone may call it) costs one check, not one broker round trip each.
HEALTH_FRESH_SECONDS = 5
# How long a check may take: connecting (2 s) plus the ping's reply window (1 s; the embedded
# filesystem broker answers in about 2 s), with margin. Callers that find no result at all (the
# first after a start) wait this long at most.
HEALTH_CHECK_SECONDS = 5


@login_required
def home(request):
    return render(request, "home.html")


def _check(probe) -> dict:
    try:
        return {"ok": True, **(probe() or {})}
    except Exception as exc:  # a health check reports failures, it never raises them
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker_and_workers() -> dict:
    """Connect to the broker and ping the workers over a connection of the check's own.

    Never through the app's connection or producer pools, which uploads publish through: a
    ping holds a pooled connection while its publish takes a producer from the same pool, so
    enough concurrent pings held every connection and waited for one forever (issue 24).
    """
    checks = {}
    with celery_app.connection_for_write() as conn:  # a new connection, not the pool's
        checks["broker"] = _check(lambda: _connect(conn))
        if not checks["broker"]["ok"]:
            return {**checks, "worker": {"ok": False}}
        mailbox = celery_app.control.mailbox(conn)  # a copy bound to `conn`
        mailbox._producer_pool = None  # publish on `conn`'s own channel, not the shared pool
        checks["worker"] = _check(lambda: _workers(mailbox))
    return checks


def _connect(conn) -> dict:
    conn.ensure_connection(max_retries=1, timeout=2)
    return {"transport": conn.transport_cls}


def _workers(mailbox) -> dict:
    replies = mailbox._broadcast("ping", reply=True, timeout=1.0) or []
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise RuntimeError("no worker answered a ping within 1 s")
    return {"workers": names}


class SharedCheck:
    """The latest result of a check, shared by every request thread of this process and run
    again, by one thread at a time, once older than `fresh` seconds; the others answer with
    the last result meanwhile (only the first callers wait, `bound` seconds at most).

    Per process, not in the cache: the cache may be the database (SQLite, where each write
    takes the database's write lock), and a burst from anyone must write nothing. N web
    processes make at most N checks per period.
    """

    def __init__(self, check, fresh: float, bound: float, unknown: dict):
        self.check, self.fresh, self.bound, self.unknown = check, fresh, bound, unknown
        self.lock = threading.Lock()
        self.result, self.at = None, -math.inf

    def _stale(self) -> bool:
        return time.monotonic() - self.at >= self.fresh

    def get(self) -> dict:
        if self.result is not None and not self._stale():
            return self.result
        waited = self.lock.acquire(timeout=self.bound) if self.result is None else False
        if not (waited or self.lock.acquire(blocking=False)):
            return self.result or self.unknown
        try:
            if self.result is None or self._stale():  # not just done by the thread we waited for
                self.result, self.at = self.check(), time.monotonic()
            return self.result
        finally:
            self.lock.release()


_UNKNOWN = {"ok": False, "error": "the first check of this process did not finish in time"}
broker_and_workers = SharedCheck(
    _broker_and_workers,
    HEALTH_FRESH_SECONDS,
    HEALTH_CHECK_SECONDS,
    unknown={"broker": _UNKNOWN, "worker": _UNKNOWN},
)


def healthz(request):
    """Database, broker and workers; 200 when all answer, 503 otherwise.

    Anyone (a load balancer, monitoring) sees whether each part is up; only staff see the
    details, since worker names, the broker transport and error messages name hosts and
    processes. The broker and worker checks are shared for a few seconds by all callers.
    """
    checks = {"database": _check(_database), **broker_and_workers.get()}
    healthy = all(check["ok"] for check in checks.values())
    if not request.user.is_staff:
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return JsonResponse({"ok": healthy, **checks}, status=200 if healthy else 503)
