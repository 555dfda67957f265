"""Celery tasks: thin, idempotent, taking ids. All work happens in services and ml/."""

from celery import shared_task

from . import jobs


@shared_task(bind=True, name="classifier.run_job")
def run_job(self, job_id: int) -> None:
    _, soft_limit = self.request.timelimit or (None, None)
    jobs.run_job(job_id, task_id=self.request.id or "", soft_time_limit=soft_limit)
