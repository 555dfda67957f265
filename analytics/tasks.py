"""Celery tasks: thin, idempotent, taking ids. The work happens in services and ml/."""

import logging
import threading

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import connection

from . import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="analytics.analyze_photo")
def analyze_photo(self, photo_id: int) -> None:
    """Analyse one photo (queued on `inference` with its time limit by services)."""
    _, soft_limit = self.request.timelimit or (None, None)
    services.analyse_photo(photo_id, soft_time_limit=soft_limit)


@shared_task(bind=True, name="analytics.apply_retention")
def apply_retention(self, classroom_id: int) -> None:
    """Blur or delete a classroom's stored photos as its retention setting asks (queued on
    `inference` by services.set_retention): blurring is image work, kept out of the request."""
    _, soft_limit = self.request.timelimit or (None, None)
    services.apply_classroom_retention(classroom_id, soft_time_limit=soft_limit)


@worker_ready.connect
def sweep_upload_leftovers_periodically(**kwargs):
    """A web process may crash long after it started: workers sweep its leftovers, once per
    grace period, in a daemon thread."""
    interval = max(60, settings.EDUMOOD_UPLOAD_LEFTOVER_SECONDS)

    def sweep_forever():
        stop = threading.Event()
        while True:
            try:
                services.sweep_upload_leftovers()
            except Exception:
                logger.exception("The sweep of upload leftovers failed")
            connection.close()
            stop.wait(interval)

    threading.Thread(target=sweep_forever, name="upload-leftovers", daemon=True).start()
