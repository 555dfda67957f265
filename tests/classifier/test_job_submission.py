"""Jobs that fail fast and speak plainly: refused at submission, plain import errors, a cancel
that says what was kept, a jobs list that names each job."""

import pytest
from django.urls import reverse

from classifier.models import Dataset, DatasetVersion, Job
from tests.classifier.conftest import dataset_zip_bytes, face_like, png_bytes, upload

pytestmark = pytest.mark.django_db


def _animals() -> DatasetVersion:
    dataset = Dataset.objects.create(name="animals")
    return DatasetVersion.objects.create(
        dataset=dataset, number=1, content_hash="a" * 64, classes=["cat", "dog"],
        attribute_counts={"age": {"young": 3}},
    )  # fmt: skip


def test_an_evaluation_or_audit_whose_classes_the_model_lacks_is_refused_at_submission(
    admin_client, model_version
):
    animals = _animals()
    for kind in ("evaluate", "audit"):
        body = {"kind": kind, "model_version": model_version.pk, "dataset_version": animals.pk}
        reply = admin_client.post("/api/jobs/", body, content_type="application/json")
        assert reply.status_code == 400, kind
        message = str(reply.json())
        assert "animals v1 has classes cat, dog that test model does not predict" in message
    page = admin_client.post(
        reverse("classifier:job-start", args=["evaluate"]),
        {"model_version": model_version.pk, "dataset_version": animals.pk},
    )
    assert page.status_code == 200 and "does not predict" in page.content.decode()
    assert not Job.objects.exists()


def test_a_flat_zip_is_refused_in_plain_words_without_a_stored_name(admin_client, media):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(4):
            archive.writestr(f"{i}.png", png_bytes(face_like(i % 2, i)))
    reply = admin_client.post(
        "/api/datasets/", {"name": "flat", "file": upload(buffer.getvalue(), "flat.zip")}
    )
    assert reply.status_code == 400
    message = reply.json()["file"][0]
    assert "Put each class's images in a folder named after the class" in message
    assert "uploads" not in message and ".zip" not in message
    assert not list((media / "uploads").glob("*")) if (media / "uploads").exists() else True
    # A zip in the expected layout is still taken.
    good = admin_client.post(
        "/api/datasets/", {"name": "good", "file": upload(dataset_zip_bytes(per_class=2))}
    )
    assert good.status_code == 202


def test_cancel_says_what_was_kept_and_the_jobs_list_names_each_job(admin_client, model_version):
    from classifier.jobs import create_job

    animals = _animals()
    job = create_job("train", {"dataset_version": animals.pk, "epochs": 1})
    reply = admin_client.post(reverse("classifier:job-cancel", args=[job.pk]), follow=True)
    assert "It had not started: nothing was made, nothing is lost." in reply.content.decode()
    # The API's job says it too, and so does a running training job once it stops.
    job = admin_client.get(f"/api/jobs/{job.pk}/").json()
    assert job["message"] == "Cancelled. It had not started: nothing was made, nothing is lost."
    running = create_job("train", {"dataset_version": animals.pk})
    running.started_at = running.created_at
    running.mark_cancelled()
    assert running.message == (
        "Cancelled. No model version is kept; the epochs' history stays on the job page."
    )
    Job.objects.create(
        kind="evaluate", status="running", params={"model_version": model_version.pk,
                                                   "dataset_version": animals.pk},
    )  # fmt: skip
    page = admin_client.get(reverse("classifier:jobs")).content.decode()
    subjects = [c.split("</td>")[0] for c in page.split('class="job-subject">')[1:]]
    model = f"model test model (#{model_version.pk}) · animals v1"
    assert subjects == [model, "animals v1", "animals v1"]


def test_the_training_form_shows_basic_fields_first_and_a_measured_speed(admin_client):
    import json
    from datetime import timedelta

    from django.utils import timezone

    animals = _animals()
    DatasetVersion.objects.filter(pk=animals.pk).update(size=1000)
    start = timezone.now() - timedelta(minutes=10)
    # 800 training images x 3 epochs in 100 s: 24 images/s.
    Job.objects.create(
        kind="train", status="succeeded", params={"dataset_version": animals.pk,
                                                  "arch": "edu-vgg-s", "val_fraction": 0.2},
        result={"history": [{"epoch": e} for e in (1, 2, 3)]},
        started_at=start, finished_at=start + timedelta(seconds=100),
    )  # fmt: skip
    page = admin_client.get(reverse("classifier:job-start", args=["train"])).content.decode()
    basic, advanced = page.split('<details id="advanced"')
    for name in ("dataset_version", "arch", "epochs", "name"):
        assert f'name="{name}"' in basic and f'name="{name}"' not in advanced
    for name in ("batch_size", "lr", "val_fraction", "keep_if_cancelled"):
        assert f'name="{name}"' in advanced
    estimate = json.loads(
        page.split('id="train-estimate" type="application/json">')[1].split("</script>")[0]
    )
    assert estimate == {"speeds": {"edu-vgg-s": 24.0}, "sizes": {str(animals.pk): 1000}}
    # A field under "Advanced" with an error opens it.
    refused = admin_client.post(
        reverse("classifier:job-start", args=["train"]),
        {"dataset_version": animals.pk, "arch": "edu-vgg-s", "epochs": 1, "batch_size": 0},
    ).content.decode()
    assert '<details id="advanced" open>' in refused


def test_an_import_without_class_folders_fails_in_plain_words_without_a_server_path(
    settings, media, tmp_path, admin_user
):
    from classifier.jobs import start_import
    from tests.classifier.conftest import run_queued

    root = tmp_path / "import-root"
    (root / "flat").mkdir(parents=True)
    for i in range(3):
        (root / "flat" / f"{i}.png").write_bytes(png_bytes(face_like(0, i)))
    settings.EDUMOOD_DATASET_IMPORT_ROOT = root
    _, job = start_import("flat folder", user=admin_user, folder="flat")
    job = run_queued(job)
    assert job.status == "failed"
    assert job.error.startswith("No class folders with images found in the folder flat.")
    assert "Put each class's images in a folder named after the class" in job.error
    assert str(tmp_path) not in job.error and str(tmp_path) not in " ".join(job.log)
