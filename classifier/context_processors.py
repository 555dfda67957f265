"""Template context every page may read; evaluated only by the templates that use it."""

from django.utils.functional import SimpleLazyObject

from .services import active_model_version


def serving_model(request) -> dict:
    """`serving_model`: the active model version (its scorecard's flags warn on Home). Lazy: a
    page that does not read it costs no query."""
    return {"serving_model": SimpleLazyObject(active_model_version)}
