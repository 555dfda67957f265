from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Model lifecycle"

    def ready(self):
        from . import signals  # noqa: F401  (connects the worker start-up sweep)
