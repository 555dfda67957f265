"""The kernel's periodic task (settings.CELERY_BEAT_SCHEDULE), thin as every task is."""

from celery import shared_task

from . import work


@shared_task(name="edumood_site.sweep_background_work")
def sweep_background_work() -> int:
    """Recover, resend and send the rows of every kind of background work."""
    return work.sweep_every_kind()
