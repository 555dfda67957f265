from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Model lifecycle"

    def ready(self):
        from . import (  # noqa: F401
            datasets,  # registers the import job's handler
            handlers,  # registers the research jobs' handlers
            tasks,  # registers run_job, which services enqueue by name
        )
