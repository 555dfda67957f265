"""Worker side: keep looking for work whose worker died mid-run, and hand it out again."""

import logging
import threading

from celery.signals import worker_process_init, worker_ready
from django.conf import settings

logger = logging.getLogger(__name__)

RECOVERY_SWEEPS: list = []  # other apps append functions returning how many rows they recovered


@worker_process_init.connect
def limit_torch_threads(**kwargs):
    import torch

    torch.set_num_threads(settings.EDUMOOD_TORCH_THREADS)


@worker_ready.connect
def start_recovery_sweeps(**kwargs):
    """Sweep at start-up and then periodically, in a daemon thread of the worker's main process.

    The embedded filesystem broker never redelivers a dead worker's message, and Redis does so
    only after its visibility timeout, so the rows themselves (with their heartbeats) are the
    source of truth for what is abandoned.
    """
    from .services import recover_abandoned_jobs

    sweeps = [recover_abandoned_jobs, *RECOVERY_SWEEPS]
    interval = max(1.0, settings.EDUMOOD_JOB_STALE_SECONDS / 2)

    def sweep_forever():
        from django.db import connection

        stop = threading.Event()
        while True:
            for sweep in sweeps:
                try:
                    recovered = sweep()
                except Exception:
                    logger.exception("Recovery sweep %s failed", sweep.__name__)
                    continue
                if recovered:
                    logger.warning("%s recovered %d abandoned row(s)", sweep.__name__, recovered)
            connection.close()
            stop.wait(interval)

    threading.Thread(target=sweep_forever, name="recovery-sweeps", daemon=True).start()
