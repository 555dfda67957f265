"""Site-wide pages: the home page and the health check."""

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from .celery import app as celery_app


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


def _broker():
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return {"transport": conn.transport_cls}


def _workers():
    replies = celery_app.control.ping(timeout=1.0) or []
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise RuntimeError("no worker answered a ping within 1 s")
    return {"workers": names}


def healthz(request):
    """Database, broker and workers; 200 when all answer, 503 otherwise.

    Anyone (a load balancer, monitoring) sees whether each part is up; only staff see the
    details, since worker names, the broker transport and error messages name hosts and
    processes.
    """
    checks = {"database": _check(_database), "broker": _check(_broker)}
    checks["worker"] = _check(_workers) if checks["broker"]["ok"] else {"ok": False}
    healthy = all(check["ok"] for check in checks.values())
    if not request.user.is_staff:
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return JsonResponse({"ok": healthy, **checks}, status=200 if healthy else 503)
