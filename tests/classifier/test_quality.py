"""Flags on useless models (one class, near chance) and the guarded promote page and API."""

import pytest
from django.urls import reverse

from classifier.models import AuditReport, Dataset, DatasetVersion, ModelVersion
from classifier.quality import quality_flags
from classifier.services import PromotionNeedsConfirmation, promote

pytestmark = pytest.mark.django_db

FER7 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# Validation class sizes of a FER2013-like split; rows are true classes.
SUPPORT = [70, 10, 70, 120, 80, 60, 90]


def matrix(predict) -> list[list[int]]:
    """A confusion matrix where true class i is predicted as predict(i, n) counts per column."""
    return [predict(i, n) for i, n in enumerate(SUPPORT)]


def only_angry(i, n):
    return [n, 0, 0, 0, 0, 0, 0]


def mostly_right(i, n):
    row = [n // 20] * 7
    row[i] = n - 6 * (n // 20)
    return row


def metrics_of(confusion) -> dict:
    """Accuracy and macro-F1 of a confusion matrix, as ml.evaluate stores them."""
    total = sum(map(sum, confusion))
    correct = sum(confusion[i][i] for i in range(len(confusion)))
    f1s = []
    for i, row in enumerate(confusion):
        predicted = sum(r[i] for r in confusion)
        precision = confusion[i][i] / predicted if predicted else 0.0
        recall = confusion[i][i] / sum(row)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {
        "accuracy": correct / total,
        "macro_f1": sum(f1s) / len(f1s),
        "confusion_matrix": confusion,
    }


def make_version(name, metrics, *, active=False, classes=FER7) -> ModelVersion:
    version = ModelVersion.objects.create(
        name=name, arch="edu-vgg-s", classes=classes, state_mapping={}, normalisation="per-image",
        checkpoint=f"models/{name}.pt", checkpoint_sha256=name.ljust(64, "0"), metrics=metrics,
    )  # fmt: skip
    return promote(version, confirmed=True) if active else version


def test_a_model_answering_one_class_is_flagged_on_both_counts():
    flags = quality_flags(metrics_of(matrix(only_angry)), FER7)
    assert [f.code for f in flags] == ["one_class", "near_chance"]
    assert "“angry” for 100%" in flags[0].message
    # Chance is the most frequent class (happy, 120 of 500), not one in seven.
    assert "always answering “happy” scores 0.240" in flags[1].message


def test_a_model_that_learnt_something_is_not_flagged():
    metrics = metrics_of(matrix(mostly_right))
    assert metrics["accuracy"] > 0.6
    assert quality_flags(metrics, FER7) == []
    # Without a confusion matrix, chance is one over the number of classes.
    assert quality_flags({"val_accuracy": 0.58}, FER7) == []
    assert [f.code for f in quality_flags({"val_accuracy": 0.18}, FER7)] == ["near_chance"]
    assert quality_flags({}, FER7) == []  # nothing measured: nothing to judge


def test_the_list_flags_useless_models_in_words_and_the_detail_page_says_why(admin_client):
    make_version("good", metrics_of(matrix(mostly_right)), active=True)
    bad = make_version("angry-only", metrics_of(matrix(only_angry)))
    page = admin_client.get(reverse("classifier:models")).content.decode()
    assert "1 version\nflagged" in page
    cell = page.split(f'data-flags="{bad.pk}">')[1].split("</td>")[0]
    assert "⚠ Predicts one class" in cell and "⚠ Near chance" in cell
    detail = admin_client.get(reverse("classifier:model", args=[bad.pk])).content.decode()
    assert 'id="quality-flags"' in detail and "“angry” for 100%" in detail


def test_promoting_a_flagged_model_needs_the_confirmation_box(admin_client):
    good = make_version("good", metrics_of(matrix(mostly_right)), active=True)
    bad = make_version("angry-only", metrics_of(matrix(only_angry)))
    url = reverse("classifier:model_promote", args=[bad.pk])
    page = admin_client.get(url).content.decode()
    assert 'id="quality-flags"' in page and 'name="confirm_flags"' in page
    assert 'id="worse-warning"' in page and "Accuracy, Macro F1" in page
    compare = page.split('id="promote-compare"')[1].split("</table>")[0]
    assert f"{bad.accuracy:.3f}" in compare and f"{good.accuracy:.3f}" in compare
    assert "▼ worse" in compare

    refused = admin_client.post(url)
    assert refused.status_code == 400 and b'id="promote-error"' in refused.content
    good.refresh_from_db()
    assert good.is_active
    admin_client.post(url, {"confirm_flags": "yes"})
    bad.refresh_from_db()
    assert bad.is_active and bad.promoted_by is not None


def test_a_better_unflagged_model_is_promoted_without_warnings(admin_client):
    make_version("weak", {"accuracy": 0.40, "macro_f1": 0.30}, active=True)
    better = make_version("better", {"accuracy": 0.60, "macro_f1": 0.55})
    url = reverse("classifier:model_promote", args=[better.pk])
    page = admin_client.get(url).content.decode()
    assert "quality-flags" not in page and "worse-warning" not in page
    assert 'name="confirm_flags"' not in page
    assert admin_client.post(url).status_code == 302
    better.refresh_from_db()
    assert better.is_active


def test_more_flagged_audit_groups_than_the_active_model_count_as_worse(admin_client):
    dataset = Dataset.objects.create(name="faces")
    data = DatasetVersion.objects.create(dataset=dataset, number=1, content_hash="h")
    active = make_version("active", {"accuracy": 0.6, "macro_f1": 0.5}, active=True)
    candidate = make_version("candidate", {"accuracy": 0.6, "macro_f1": 0.5})
    for version, findings in ((active, []), (candidate, [{"attribute": "age", "group": "60+"}])):
        AuditReport.objects.create(
            model_version=version, dataset_version=data, attributes=["age"], source="annotator",
            result={"findings": findings},
        )  # fmt: skip
    page = admin_client.get(reverse("classifier:model_promote", args=[candidate.pk]))
    text = page.content.decode()
    warning = text.split('id="worse-warning"')[1].split("</div>")[0]
    assert "on: Flagged groups in the latest bias audit." in warning


def test_the_api_refuses_a_flagged_promotion_with_409_unless_confirmed(admin_client):
    bad = make_version("angry-only", metrics_of(matrix(only_angry)))
    body = admin_client.get(f"/api/model-versions/{bad.pk}/").json()
    assert [w["code"] for w in body["warnings"]] == ["one_class", "near_chance"]
    url = f"/api/model-versions/{bad.pk}/promote/"
    refused = admin_client.post(url)
    assert refused.status_code == 409 and "confirm" in refused.json()["detail"].lower()
    assert not ModelVersion.objects.filter(is_active=True).exists()
    confirmed = admin_client.post(url, {"confirm": True}, content_type="application/json")
    assert confirmed.status_code == 200 and confirmed.json()["is_active"] is True
    with pytest.raises(PromotionNeedsConfirmation):
        promote(make_version("angry-again", metrics_of(matrix(only_angry))))
