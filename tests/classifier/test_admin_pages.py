"""Admin pages as people use them. The fairness dashboard: reachable from the nav and model
pages, an audit picker, no debug 404 without parameters, groups without samples shown as "no
data" (never 0.000). Model pages show the metrics a version has, wherever they were measured."""

import pytest
from django.urls import reverse

from classifier.models import AuditReport, Dataset, DatasetVersion

pytestmark = pytest.mark.django_db


def _group(n: int, accuracy: float) -> dict:
    scores = ("accuracy", "ci_low", "ci_high", "macro_precision", "macro_recall", "macro_f1")
    return {"n": n, "small": n < 5} | dict.fromkeys(scores, accuracy)


@pytest.fixture
def audit(model_version, admin_user):
    dataset = Dataset.objects.create(name="Faces")
    version = DatasetVersion.objects.create(
        dataset=dataset, number=1, content_hash="0" * 64, classes=["happy", "sad"], size=12,
        class_counts={"happy": 6, "sad": 6},
    )  # fmt: skip
    table = {
        "overall": _group(12, 0.75),
        "groups": {"Young": _group(12, 0.75), "Senior": _group(0, 0.0)},
        "best_group": "Young",
        "disparity": {"accuracy_difference": 0.0, "accuracy_ratio": 1.0},
        "missing": 0,
    }
    return AuditReport.objects.create(
        model_version=model_version, dataset_version=version, attributes=["age_bin"],
        source="annotator", result={"accuracy": 0.75, "findings": [],
                                    "attributes": {"age_bin": table}},
    )  # fmt: skip


def test_fairness_is_linked_from_the_nav_and_the_model_page(admin_client, audit):
    fairness = reverse("classifier:fairness")
    home = admin_client.get(reverse("classifier:models")).content.decode()
    assert f'href="{fairness}"' in home
    model_page = admin_client.get(reverse("classifier:model", args=[audit.model_version_id]))
    assert f"{fairness}?model={audit.model_version_id}" in model_page.content.decode()
    listed = admin_client.get(fairness, {"model": audit.model_version_id}).content.decode()
    assert 'id="audit-picker"' in listed and f"#{audit.pk}" in listed
    picked = admin_client.get(fairness, {"audit": audit.pk})
    assert picked.status_code == 302 and picked.url == reverse("classifier:audit", args=[audit.pk])


def test_compare_without_audits_explains_instead_of_a_404(admin_client, audit):
    for query in ({}, {"before": audit.pk}, {"before": "x", "after": 999}):
        response = admin_client.get(reverse("classifier:fairness-compare"), query, follow=True)
        assert response.status_code == 200
        assert "Pick two audits to compare" in response.content.decode()


def test_a_group_without_samples_shows_no_data(admin_client, audit):
    page = admin_client.get(reverse("classifier:audit", args=[audit.pk])).content.decode()
    assert "no data: no images of this group" in page
    assert "<td>Senior</td><td>0</td><td>0.000" not in page
    compared = admin_client.get(
        reverse("classifier:fairness-compare"), {"before": audit.pk, "after": audit.pk}
    ).content.decode()
    assert "<td>Senior</td><td>–</td><td>–</td>" in compared


def test_model_pages_show_the_scorecard_from_training_then_from_evaluation(
    admin_client, model_version
):
    from classifier.models import ModelVersion
    from classifier.services import record_measurement
    from ml.scorecard import MeasuredOn

    # A checkpoint straight from training stores only the accuracy it was selected by.
    trained = ModelVersion.objects.get(pk=model_version.pk)
    trained.pk, trained.is_active, trained.metrics = None, False, {"val_accuracy": 0.583}
    trained.checkpoint_sha256, trained.scorecard = "f" * 64, None
    trained.save()
    page = admin_client.get(reverse("classifier:model", args=[trained.pk])).content.decode()
    assert "0.583 · not on a reference set" in page and 'data-flag="no_matrix"' in page
    listed = admin_client.get(reverse("classifier:models")).content.decode()
    assert "0.583 · not on a reference set" in listed
    # An evaluation's measurement becomes the scorecard every page shows.
    measured = MeasuredOn("all of faces v2", 300, True, None)
    record_measurement(trained, {"accuracy": 0.61, "macro_f1": 0.52}, measured, "evaluation job #7")
    compared = admin_client.get(
        reverse("classifier:model-compare"), {"ids": [model_version.pk, trained.pk]}
    ).content.decode()
    assert "0.520" in compared and "evaluation job #7" in compared and "all of faces v2" in compared
    listed = admin_client.get(reverse("classifier:models")).content.decode()
    assert "0.610" in listed and "0.583" not in listed


def _job(kind="train", status="succeeded", result=None):
    from classifier.models import Job

    return Job.objects.create(kind=kind, status=status, params={}, result=result)


def test_a_finished_job_offers_no_retry_and_no_epoch_or_eta(admin_client):
    rising = [{"epoch": e, "loss": loss, "accuracy": 0.3, "val_accuracy": 0.25}
              for e, loss in enumerate([1.9, 1.5, 2.6, 5.0], start=1)]  # fmt: skip
    done = _job(result={"history": rising, "epochs": 4, "epoch": 4})
    page = admin_client.get(reverse("classifier:job", args=[done.pk])).content.decode()
    assert "Retry with the same parameters" not in page
    assert '<span data-field="training" hidden>' in page
    assert 'id="loss-warning"' in page and "rose from 1.900" in page
    refused = admin_client.post(reverse("classifier:job-retry", args=[done.pk]), follow=True)
    assert "Only a failed or cancelled job can be retried" in refused.content.decode()
    failed = _job(status="failed")
    page = admin_client.get(reverse("classifier:job", args=[failed.pk])).content.decode()
    assert "Retry with the same parameters" in page


def test_training_charts_use_two_axes_whole_epochs_and_unjoined_folds():
    from classifier import charts

    history = [{"epoch": e, "loss": 2.0 / e, "accuracy": 0.1 * e} for e in range(1, 4)]
    curves = charts.training_curves(history).to_plotly_json()
    assert [t.get("yaxis") for t in curves["data"]] == [None, "y2"]
    assert curves["layout"]["yaxis2"]["tickformat"] == ".0%"
    assert curves["layout"]["xaxis"]["dtick"] == 1
    folds = [{"accuracy": 0.5, "macro_f1": 0.4}, {"accuracy": 0.6, "macro_f1": 0.5}]
    kfold = charts.kfold_chart({"folds": folds}).to_plotly_json()
    assert {t["mode"] for t in kfold["data"]} == {"markers"}


def test_the_jobs_list_refreshes_while_a_job_runs(admin_client):
    _job(status="running")
    _job()
    page = admin_client.get(reverse("classifier:jobs")).content.decode()
    assert page.count("data-running") == 1 and "js/classifier.js" in page
    assert "js/poll.js" in page


def test_the_job_forms_show_the_lr_default_of_each_optimizer(admin_client, imported_version):
    from classifier.forms import TrainForm
    from classifier.handlers import train_config

    for kind in ("train", "kfold"):
        page = admin_client.get(reverse("classifier:job-start", args=[kind])).content.decode()
        assert 'placeholder="default: 0.1 for sgd, 0.002 for adamw"' in page
    # The form as a page submits it untouched: every initial value, lr left empty.
    data = {n: f.initial for n, f in TrainForm.base_fields.items() if f.initial is not None}
    for optimizer, lr in (("sgd", 0.1), ("adamw", 0.002)):
        form = TrainForm({**data, "dataset_version": imported_version.pk, "optimizer": optimizer})
        assert form.is_valid(), form.errors
        assert "lr" not in form.params() and train_config(form.params()).lr == lr
