from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Classroom analytics"

    def ready(self):
        from . import signals  # noqa: F401  (files are deleted with their photos)
