"""Celery tasks: thin, idempotent, taking ids. The work happens in services and ml/."""

from celery import shared_task

from . import services


@shared_task(bind=True, name="analytics.analyse_photo")
def analyse_photo(self, photo_id: int) -> None:
    """Analyse one photo (queued on `inference` with its time limit by services)."""
    _, soft_limit = self.request.timelimit or (None, None)
    services.analyse_photo(photo_id, soft_time_limit=soft_limit)


@shared_task(name="analytics.sweep_upload_leftovers")
def sweep_upload_leftovers() -> int:
    """Remove what crashed uploads left (on the beat schedule: settings.CELERY_BEAT_SCHEDULE)."""
    return services.sweep_upload_leftovers()


@shared_task(bind=True, name="analytics.apply_retention")
def apply_retention(self, classroom_id: int) -> None:
    """Blur or delete a classroom's stored photos as its retention setting asks (queued on
    `inference` by services.set_retention): blurring is image work, kept out of the request."""
    _, soft_limit = self.request.timelimit or (None, None)
    services.apply_classroom_retention(classroom_id, soft_time_limit=soft_limit)


@shared_task(name="analytics.resend_pending_retention")
def resend_pending_retention() -> int:
    """Send again the retention of classrooms whose photos still wait for it (on the beat
    schedule: settings.CELERY_BEAT_SCHEDULE)."""
    return services.resend_pending_retention()
