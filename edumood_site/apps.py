"""The kernel's start-up step. Importing the settings touches no file; what they name on disk
(var/ folders, the local secret key) is made here, when a process sets Django up: the web
server, a worker, beat, `manage.py` (make run's migrate first), the test run. Here too every
app's tasks.py is registered with the Celery app, in every process: a worker runs them, and
with CELERY_TASK_ALWAYS_EAGER (the tests) the process that sends a task runs it itself."""

import os
from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class SiteConfig(AppConfig):
    name = "edumood_site"
    verbose_name = "EduMood site"

    def ready(self) -> None:
        for folder in settings.EDUMOOD_FOLDERS:
            Path(folder).mkdir(parents=True, exist_ok=True)
        if settings.EDUMOOD_SECRET_KEY_FILE:
            settings.SECRET_KEY = local_secret_key(Path(settings.EDUMOOD_SECRET_KEY_FILE))
        from .celery import app

        app.autodiscover_tasks(force=True)


def local_secret_key(path: Path) -> str:
    """The key kept in `path`, made (random, readable by the owner only) by the first process
    that starts; processes starting together all read the one that won."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        import secrets

        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()
