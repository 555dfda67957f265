"""The Celery app: two named queues, late acks, one message prefetched per worker process;
periodic work from the beat schedule (settings.CELERY_BEAT_SCHEDULE)."""

import os

from celery import Celery
from celery.signals import beat_init, worker_process_init
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edumood_site.settings")

# `inference`: photo analyses and the periodic sweeps (short tasks, CPU workers); `training`:
# every kind of job (classifier/jobs.py). Each has its time limit (edumood_site.work).
QUEUES = ("inference", "training")

app = Celery("edumood")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=tuple(
        Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
    ),
    task_default_queue="inference",
    # A task is acknowledged only after it ran, so a worker killed mid-task does not lose it;
    # tasks are idempotent (they check their row's status first), so redelivery is safe.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # No result backend, so nothing to expire: beat adds no daily clean-up of its own.
    result_expires=None,
)
# Every app's tasks.py is registered when Django starts (edumood_site.apps), in every process.


@beat_init.connect
def run_the_schedule_at_start(sender, **kwargs):
    """Send every entry of the beat schedule once as beat starts, then at its interval: what a
    crash left (abandoned rows, lost messages, upload leftovers) is swept when the deployment
    starts again, not one interval later (an hour, for the leftovers)."""
    scheduler = sender.scheduler
    for entry in scheduler.schedule.values():
        scheduler.apply_entry(entry)


@worker_process_init.connect
def limit_torch_threads(**kwargs):
    """Each pool process uses EDUMOOD_TORCH_THREADS threads (1 by default: processes share CPUs)."""
    import torch
    from django.conf import settings

    torch.set_num_threads(settings.EDUMOOD_TORCH_THREADS)
