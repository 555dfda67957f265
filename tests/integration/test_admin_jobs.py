"""The admin workflow on a real Redis broker and a real celery worker, through the API."""

import pytest

from tests.classifier.conftest import FAST_TRAIN, dataset_zip_bytes, upload
from tests.conftest import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shared_media(settings, tmp_path, monkeypatch):
    """One MEDIA_ROOT for this process and the worker subprocess (which reads the env)."""
    media = tmp_path / "media"
    monkeypatch.setenv("MEDIA_ROOT", str(media))
    monkeypatch.setenv("EDUMOOD_DEVICE", "cpu")
    settings.MEDIA_ROOT = media
    settings.EDUMOOD_DEVICE = "cpu"
    return media


def _finished(client, job_id: int) -> dict:
    def done():
        job = client.get(f"/api/jobs/{job_id}/").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_until(done, 180, interval=0.5, message=f"job {job_id} to finish")
    assert job["status"] == "succeeded", job["error"]
    return job


def test_import_train_evaluate_audit_and_promote_on_a_real_worker(
    worker_factory, shared_media, client, django_user_model
):
    admin = django_user_model.objects.create_user("boss", password="x-Long-pass-1", is_staff=True)
    client.force_login(admin)
    worker_factory(stale_seconds=60)  # a busy machine must not look like a dead worker

    started = client.post("/api/datasets/", {"name": "faces", "file": upload(dataset_zip_bytes())})
    assert started.status_code == 202, started.content
    imported = _finished(client, started.json()["job"])
    version = imported["result"]["dataset_version"]

    def start(kind, **payload):
        response = client.post(
            "/api/jobs/", {"kind": kind, **payload}, content_type="application/json"
        )
        assert response.status_code == 202, response.content
        return response.json()["id"]

    trained = _finished(client, start("train", dataset_version=version, params=FAST_TRAIN))
    model = trained["model_version"]
    assert trained["result"]["history"][0]["epoch"] == 1 and trained["result"]["device"] == "cpu"

    evaluated = _finished(client, start("evaluate", dataset_version=version, model_version=model))
    assert evaluated["result"]["metrics"]["n"] == 10  # the split training held out

    audited = _finished(
        client,
        start("audit", dataset_version=version, model_version=model,
              params={"attributes": "gender", "min_group_size": 2}),
    )  # fmt: skip
    report = client.get(f"/api/audits/{audited['result']['audit']}/").json()
    assert report["source"] == "annotator" and set(report["result"]["attributes"]) == {"gender"}

    # One epoch on 48 images answers one class: flagged, so promoting it takes a confirmation.
    promote = f"/api/model-versions/{model}/promote/"
    assert client.post(promote).status_code == 409
    promoted = client.post(promote, {"confirm": True}, content_type="application/json").json()
    assert promoted["is_active"] is True and promoted["promoted_by"] == "boss"
