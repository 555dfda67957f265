"""Each dataset version stores its page's figures, made once where the images are decoded.

Versions imported before get theirs here, decoded from their caches (this loads torch and takes
seconds per large version, in `manage.py migrate`, never in a web process). A version whose
cache cannot be read keeps none, and its page says so.
"""

import zipfile

from django.db import migrations, models


def store_figures(apps, schema_editor):
    from classifier.datasets import dataset_figures, load_version

    DatasetVersion = apps.get_model("classifier", "DatasetVersion")
    for version in DatasetVersion.objects.exclude(cache="").iterator():
        try:
            data = load_version(version)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue  # missing or damaged: nothing to draw
        version.figures = dataset_figures(data)
        version.save(update_fields=["figures"])


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0006_model_version_scorecard"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasetversion",
            name="figures",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(store_figures, migrations.RunPython.noop, elidable=True),
    ]
