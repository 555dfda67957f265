"""Job handlers on small generated datasets: train, evaluate, audit, mitigate, cancel."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from classifier.choices import JobKind, JobStatus
from classifier.handlers import train_job
from classifier.jobs import create_job, start_import
from classifier.models import AuditReport, Job, ModelVersion
from edumood_site.work import WorkCancelled

from .conftest import FAST_TRAIN, dataset_zip_bytes, run_queued, upload

pytestmark = pytest.mark.django_db


def test_a_trained_version_has_metrics_history_and_data_and_can_be_evaluated_and_audited(
    trained_version, imported_version, media
):
    version = trained_version
    job = version.job
    assert version.dataset_version == imported_version and version.arch == "edu-vgg-s"
    assert version.created_by.username == "boss" and version.device == "cpu"
    assert version.classes == ["happy", "sad"]
    metrics = version.metrics
    assert metrics["n"] == 10 and 0 <= metrics["accuracy"] <= 1  # 20% stratified validation
    assert len(metrics["confusion_matrix"]) == 2 and "macro_f1" in metrics and "micro_f1" in metrics
    assert [h["epoch"] for h in version.history] == [1]
    assert job.result["history"][0]["val_accuracy"] == pytest.approx(
        version.history[0]["val_accuracy"]
    )
    assert job.result["model_version"] == version.pk and job.progress == 1.0
    assert not list((media / "checkpoints").glob("*.pt")), "the job's working checkpoint is gone"
    # The calibration counts the same validation faces: happy is Engaged, sad is Bored.
    calibration = version.calibration
    assert calibration["states"] == ["Engaged", "Bored"]
    assert calibration["confusion"] == metrics["confusion_matrix"]
    # Its scorecard: measured on a split of its own upload, 5 faces a class: no headline.
    card = version.card
    assert card.measured_on.name == f"the validation split of {imported_version}"
    assert (card.measured_on.size, card.measured_on.reference) == (10, False)
    assert card.accuracy == round(metrics["accuracy"], 4) and card.headline is None
    assert {"own_split", "few_test_faces"} <= {f.code for f in card.flags}
    assert card.calibration_faces == 10
    ModelVersion.objects.filter(pk=version.pk).update(calibration=None)

    evaluation = run_queued(create_job(JobKind.EVALUATE, {
        "model_version": trained_version.pk, "dataset_version": imported_version.pk}))  # fmt: skip
    assert evaluation.status == JobStatus.SUCCEEDED, evaluation.error
    # On its own training data a model is scored on the split its training held out.
    assert evaluation.result["evaluated_on"].startswith("the validation split")
    assert evaluation.result["metrics"]["n"] == 10
    assert evaluation.result["metrics"]["accuracy"] == trained_version.metrics["accuracy"]
    # An evaluation measures the calibration of a version that has none, on the same faces.
    version.refresh_from_db()
    assert version.calibration["confusion"] == calibration["confusion"]
    assert version.card.source == f"evaluation job #{evaluation.pk}"
    assert version.card.measured_on.reference is False

    audit_job = run_queued(create_job(JobKind.AUDIT, {
        "model_version": trained_version.pk, "dataset_version": imported_version.pk,
        "min_group_size": 2}))  # fmt: skip
    assert audit_job.status == JobStatus.SUCCEEDED, audit_job.error
    report = AuditReport.objects.get(pk=audit_job.result["audit"])
    assert report.source == imported_version.attribute_source == "annotator"
    assert report.result["source"] == "annotator"
    assert report.attributes == ["gender", "age_bin"]  # raw ages are not groups
    groups = report.result["attributes"]["gender"]["groups"]
    assert sum(e["n"] for e in groups.values()) == 10
    assert all(e["ci_low"] <= e["accuracy"] <= e["ci_high"] for e in groups.values())


def test_kfold_reports_every_fold_and_mean_and_std(imported_version, admin_client):
    job = run_queued(create_job(JobKind.KFOLD, {
        **FAST_TRAIN, "dataset_version": imported_version.pk, "k": 2}))  # fmt: skip
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert [f["fold"] for f in job.result["folds"]] == [0, 1]
    assert sum(f["n_test"] for f in job.result["folds"]) == 48
    assert set(job.result["mean"]) == set(job.result["std"]) >= {"accuracy", "macro_f1"}
    assert job.result["config"]["arch"] == "edu-vgg-s"
    page = admin_client.get(reverse("classifier:job", args=[job.pk])).content.decode()
    assert "mean ± std" in page and f'data-figure="kfold_{job.pk}"' in page


def test_a_job_naming_a_missing_version_fails_with_a_reason():
    job = run_queued(create_job(JobKind.EVALUATE, {"model_version": 999, "dataset_version": 1}))
    assert job.status == JobStatus.FAILED and "Model version 999 does not exist" in job.error


def test_mitigation_trains_a_new_version_and_audits_before_and_after(
    trained_version, imported_version, admin_client
):
    job = run_queued(create_job(JobKind.MITIGATE, {
        "model_version": trained_version.pk, "dataset_version": imported_version.pk,
        "attribute": "age_bin", "strategy": "rebalance", "epochs": 1}))  # fmt: skip
    assert job.status == JobStatus.SUCCEEDED, job.error
    after = ModelVersion.objects.get(pk=job.result["model_version"])
    assert after != trained_version and after.dataset_version == imported_version
    before_audit = AuditReport.objects.get(pk=job.result["before"]["audit"])
    after_audit = AuditReport.objects.get(pk=job.result["after"]["audit"])
    assert (before_audit.model_version, after_audit.model_version) == (trained_version, after)
    assert before_audit.attributes == after_audit.attributes == ["age_bin", "gender"]
    assert set(job.result["comparison"]) == {"Young", "Mid", "Senior"}
    assert sum(job.result["train_groups"].values()) == 38  # the training part of the split
    page = admin_client.get(reverse("classifier:job", args=[job.pk])).content.decode()
    compare_url = reverse("classifier:fairness-compare")
    assert f"{compare_url}?before={before_audit.pk}&amp;after={after_audit.pk}" in page
    page = admin_client.get(f"{compare_url}?before={before_audit.pk}&after={after_audit.pk}")
    assert page.status_code == 200
    assert page.content.decode().count("data-figure=") == 4  # age_bin and gender, both sides


def test_cancelling_training_before_an_epoch_finishes_keeps_no_version(imported_version):
    job = create_job(JobKind.TRAIN, {**FAST_TRAIN, "dataset_version": imported_version.pk})
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    with pytest.raises(WorkCancelled) as stopped:
        train_job(job)
    assert stopped.value.partial_result["history"] == []
    assert not ModelVersion.objects.exists()


@pytest.fixture
def cancel_after_first_epoch(monkeypatch):
    """Request cancellation (as the API would) once a training job has validated an epoch."""
    from classifier import handlers

    real = handlers.training_progress

    def progress(job):
        report = real(job)

        def cancelling(p):
            report(p)
            if p.phase == "val":
                Job.objects.filter(pk=job.pk).update(cancel_requested=True)

        return cancelling

    monkeypatch.setattr(handlers, "training_progress", progress)


@pytest.mark.parametrize("keep", [False, True])
def test_a_cancelled_training_run_becomes_a_version_only_when_the_admin_keeps_it(
    imported_version, cancel_after_first_epoch, keep
):
    params = {**FAST_TRAIN, "epochs": 200, "dataset_version": imported_version.pk}
    if keep:
        params["keep_if_cancelled"] = True
    job = run_queued(create_job(JobKind.TRAIN, params))
    assert job.status == JobStatus.CANCELLED, job.error
    epochs_run = len(job.result["history"])
    assert 1 <= epochs_run < 200
    if keep:
        version = ModelVersion.objects.get()
        assert job.result["model_version"] == version.pk
        assert len(version.history) >= 1 and "cancelled" in version.name
    else:
        assert not ModelVersion.objects.exists()
        assert "model_version" not in job.result


def test_mitigating_a_version_validated_on_a_separate_dataset_version_works(
    imported_version, admin_user
):
    """A version trained with `val_dataset_version` keeps validating there when mitigated (it
    failed with "Dataset version None does not exist": the name was read from the mitigation
    job's own parameters, which do not carry it)."""
    job = run_queued(create_job(JobKind.TRAIN, {
        **FAST_TRAIN, "dataset_version": imported_version.pk,
        "val_dataset_version": imported_version.pk}, user=admin_user))  # fmt: skip
    assert job.status == JobStatus.SUCCEEDED, job.error
    before = ModelVersion.objects.get(pk=job.result["model_version"])
    job = run_queued(create_job(JobKind.MITIGATE, {
        "model_version": before.pk, "dataset_version": imported_version.pk,
        "attribute": "age_bin", "strategy": "reweight", "epochs": 1}))  # fmt: skip
    assert job.status == JobStatus.SUCCEEDED, job.error
    after = ModelVersion.objects.get(pk=job.result["model_version"])
    assert after.card.measured_on.name == f"all of {imported_version}"
    assert after.card.measured_on.size == 48


def _stored(name: str) -> str:
    return default_storage.save(name, ContentFile(b"kept only while the job runs"))


def test_an_import_cancelled_while_queued_leaves_no_uploaded_zip(media, admin_user):
    _, job = start_import("faces", user=admin_user, upload=upload(dataset_zip_bytes()))
    assert default_storage.exists(job.params["upload"])
    job.request_cancel()
    assert job.status == JobStatus.CANCELLED and not default_storage.exists(job.params["upload"])


def test_a_job_that_fails_or_is_given_up_leaves_no_resume_point(media):
    failing = create_job(JobKind.TRAIN, {**FAST_TRAIN, "dataset_version": 999})
    assert _stored(failing.resume_point) == failing.resume_point
    assert run_queued(failing).status == JobStatus.FAILED
    assert not default_storage.exists(failing.resume_point)

    # A run whose workers all died: the sweep gives up on it.
    abandoned = create_job(JobKind.TRAIN, {**FAST_TRAIN, "dataset_version": 999})
    _stored(abandoned.resume_point)
    Job.objects.filter(pk=abandoned.pk).update(
        status=JobStatus.RUNNING, attempts=Job.MAX_ATTEMPTS,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )  # fmt: skip
    assert Job.recover_abandoned() == 1
    abandoned.refresh_from_db()
    assert abandoned.status == JobStatus.FAILED and "Gave up" in abandoned.error
    assert not default_storage.exists(abandoned.resume_point)
