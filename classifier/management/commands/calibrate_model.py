"""Measure a model version's calibration (its state-level errors) on labelled faces."""

from django.core.management.base import BaseCommand, CommandError

from classifier.models import ModelVersion
from classifier.services import active_model_version, calibrate_model_version
from ml.errors import MLError


class Command(BaseCommand):
    help = (
        "Measure a model version's errors on a folder of labelled faces the model was not "
        "trained on (e.g. ../shared/data/fer2013/val) and store them, so session shares are "
        "corrected. Sessions already analysed keep their numbers until re-analysed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, help="folder (or zip) of <class>/<image>")
        parser.add_argument(
            "--model-version", type=int, help="model version id (default: the active one)"
        )

    def handle(self, *args, data, model_version, **options):
        chosen = (
            ModelVersion.objects.filter(pk=model_version).first()
            if model_version
            else active_model_version()
        )
        if chosen is None:
            raise CommandError("No such model version (and none active).")
        try:
            calibration = calibrate_model_version(chosen, data)
        except MLError as exc:
            raise CommandError(str(exc)) from exc
        faces = sum(map(sum, calibration["confusion"]))
        self.stdout.write(f"Calibration of {chosen} measured on {faces} faces from {data}.")
