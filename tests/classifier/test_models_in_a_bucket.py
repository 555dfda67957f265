"""Dataset archives and caches, resume points and checkpoints in a private S3 bucket
(EDUMOOD_STORAGE=s3) on a real S3 server over HTTP (moto's, tests/s3.py). The worker's ml calls
take paths: scratch copies of the bucket's files, gone afterwards. Nothing is written to local
media (the `s3` fixture checks)."""

import tempfile
from pathlib import Path

import pytest
import torch

from classifier.choices import JobKind
from classifier.jobs import create_job
from classifier.models import ModelVersion
from classifier.services import load_classifier
from edumood_site.storage import WorkingCopy
from tests.classifier.conftest import FAST_TRAIN, run_queued

pytestmark = pytest.mark.django_db


def scratch_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("edumood-*")}


def test_import_training_and_serving_keep_every_file_in_the_bucket(
    s3, imported_version, admin_user
):
    server, bucket = s3
    before = scratch_folders()
    # The uploaded zip went to the bucket and was removed after the import; the cache stays.
    assert server.keys(bucket, "datasets/") == [imported_version.cache.name]
    train = run_queued(
        create_job(
            JobKind.TRAIN, {**FAST_TRAIN, "dataset_version": imported_version.pk}, user=admin_user
        )
    )
    assert train.status == "succeeded", train.error
    version = ModelVersion.objects.get(pk=train.result["model_version"])
    assert server.keys(bucket, "models/") == [version.checkpoint.name]
    assert server.keys(bucket, "checkpoints/") == []  # the resume point goes with the run
    classifier = load_classifier(version)  # from a scratch copy of the bucket's checkpoint
    assert list(classifier.classes) == ["happy", "sad"]
    mitigated = run_queued(
        create_job(
            JobKind.MITIGATE,
            {
                **FAST_TRAIN,
                "model_version": version.pk,
                "dataset_version": imported_version.pk,
                "attribute": "gender",
                "strategy": "reweight",
            },
            user=admin_user,
        )  # fmt: skip
    )
    assert mitigated.status == "succeeded", mitigated.error  # its baseline read from the bucket
    assert len(server.keys(bucket, "models/")) == 2
    assert scratch_folders() <= before  # every scratch copy removed


def test_a_training_run_resumes_from_the_point_another_worker_stored(
    s3, imported_version, admin_user
):
    """A worker died after epoch 1 of 2 and stored its resume point in the bucket: the job,
    delivered to a worker on another host (nothing on its disk), trains epoch 2 only."""
    from classifier.datasets import load_version
    from classifier.handlers import train_config
    from ml.checkpoint import save_checkpoint
    from ml.train import train

    server, bucket = s3
    params = {**FAST_TRAIN, "epochs": 2, "dataset_version": imported_version.pk}
    job = create_job(JobKind.TRAIN, params, user=admin_user)
    epochs_done = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resume.pt"
        data = load_version(imported_version)
        train(
            data, None, train_config(params), checkpoint_path=path,
            should_stop=lambda: bool(epochs_done),
            progress=lambda p: p.phase == "val" and epochs_done.append(p.epoch),
        )  # fmt: skip
        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["epoch"] == 1
        checkpoint["history"][0]["loss"] = 123.0  # a mark only the stored run carries
        save_checkpoint(path, checkpoint)
        server.client().upload_file(str(path), bucket, f"checkpoints/job-{job.pk}.pt")
    job = run_queued(job)
    assert job.status == "succeeded", job.error
    version = ModelVersion.objects.get(pk=job.result["model_version"])
    assert [entry["loss"] for entry in version.history][0] == 123.0
    assert [entry["epoch"] for entry in job.result["history"]] == [2]  # the only epoch run
    assert server.keys(bucket, "checkpoints/") == []


def test_a_working_copy_is_filled_from_the_bucket_and_stored_as_it_changes(s3):
    server, bucket = s3
    key = "checkpoints/job-1.pt"
    first = WorkingCopy(key)
    with first as path:
        assert not path.exists()  # nothing stored yet: a fresh run
        first.sync()
        assert server.keys(bucket, "checkpoints/") == []
        path.write_bytes(b"epoch 1")
        first.sync()
        assert server.client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"epoch 1"
    assert not path.exists()  # the scratch copy is gone
    second = WorkingCopy(key)
    with second as path:
        assert path.read_bytes() == b"epoch 1"  # another worker picks up where it stopped
        second.sync()  # unchanged: no upload
        path.write_bytes(b"epoch 2")
        second.sync()
    assert server.client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"epoch 2"
    second.discard()
    assert server.keys(bucket, "checkpoints/") == []
