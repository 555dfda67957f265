from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Classroom analytics"

    def ready(self):
        from . import (  # noqa: F401
            signals,  # files are deleted with their photos
            tasks,  # registers analyze_photo, which services enqueue by name
        )
