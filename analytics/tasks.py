"""Celery tasks: thin, idempotent, taking ids. The work happens in services and ml/."""

from celery import shared_task

from . import services


@shared_task(name="analytics.analyze_photo")
def analyze_photo(photo_id: int) -> None:
    """Analyse one photo (queued on `inference` with its time limit by services)."""
    services.analyse_photo(photo_id)
