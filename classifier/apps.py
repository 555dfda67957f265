from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Model lifecycle"

    def ready(self):
        from . import (  # noqa: F401  (register their job handlers)
            datasets,
            handlers,
            signals,  # noqa: F401  (connects the worker start-up sweep)
        )
