from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Classroom analytics"

    def ready(self):
        from classifier.signals import RECOVERY_SWEEPS

        from . import signals  # noqa: F401  (files are deleted with their photos)
        from .services import recover_abandoned_photos

        if recover_abandoned_photos not in RECOVERY_SWEEPS:
            RECOVERY_SWEEPS.append(recover_abandoned_photos)
