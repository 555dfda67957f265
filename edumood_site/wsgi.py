import logging
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edumood_site.settings")
application = get_wsgi_application()


def _sweep_upload_leftovers() -> None:
    """What a crashed web process left (spooled bodies, photo files without a row) goes at start."""
    from analytics.services.uploads import sweep_upload_leftovers

    try:
        sweep_upload_leftovers()
    except Exception:  # a sweep must never keep the site from starting (e.g. before migrate)
        logging.getLogger(__name__).exception("The start-up sweep of upload leftovers failed")


_sweep_upload_leftovers()
