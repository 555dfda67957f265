"""The Celery app: two named queues, late acks, one message prefetched per worker process."""

import os

from celery import Celery
from celery.signals import worker_process_init
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edumood_site.settings")

app = Celery("edumood")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=tuple(
        Queue(name, Exchange(name, type="direct"), routing_key=name)
        for name in ("inference", "training")
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
)
app.autodiscover_tasks()


@worker_process_init.connect
def limit_torch_threads(**kwargs):
    """Each pool process uses EDUMOOD_TORCH_THREADS threads (1 by default: processes share CPUs)."""
    import torch
    from django.conf import settings

    torch.set_num_threads(settings.EDUMOOD_TORCH_THREADS)
