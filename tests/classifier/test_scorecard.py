"""One scorecard per model version: its numbers and flags, read by every page and the API,
and the guarded promote page and API."""

import importlib
import json

import pytest
from django.apps import apps
from django.urls import reverse

from classifier.models import AuditReport, Dataset, DatasetVersion, Job, ModelVersion
from classifier.services import PromotionNeedsConfirmation, promote, record_measurement
from ml.labels import default_state_mapping
from ml.scorecard import DEFAULT_EVALUATION, MeasuredOn, build_scorecard

pytestmark = pytest.mark.django_db

FER7 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# Validation class sizes of a FER2013-like split; rows are true classes.
SUPPORT = [70, 50, 70, 120, 80, 60, 90]
REFERENCE = MeasuredOn("all of reference v1", sum(SUPPORT), True, None)


def matrix(predict) -> list[list[int]]:
    """A confusion matrix where true class i is predicted as predict(i, n) counts per column."""
    return [predict(i, n) for i, n in enumerate(SUPPORT)]


def only_angry(i, n):
    return [n, 0, 0, 0, 0, 0, 0]


def mostly_right(i, n):
    row = [n // 20] * 7
    row[i] = n - 6 * (n // 20)
    return row


def half_right(i, n):
    row = [n // 12] * 7
    row[i] = n - 6 * (n // 12)
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


def card_of(metrics, measured_on=REFERENCE):
    return build_scorecard(
        metrics, FER7, default_state_mapping(FER7), measured_on=measured_on, source="test"
    )


def make_version(name, metrics, *, active=False, classes=FER7, reference=True) -> ModelVersion:
    """A version with training metrics; `reference`: then evaluated on REFERENCE."""
    version = ModelVersion.objects.create(
        name=name, arch="edu-vgg-s", classes=classes, state_mapping=default_state_mapping(classes),
        normalisation="per-image", checkpoint=f"models/{name}.pt",
        checkpoint_sha256=name.ljust(64, "0"), metrics=metrics,
    )  # fmt: skip
    if reference:
        record_measurement(version, metrics, REFERENCE, "evaluation job #0")
    return promote(version, confirmed=True) if active else version


def test_a_model_answering_one_class_is_flagged_on_both_counts():
    flags = card_of(metrics_of(matrix(only_angry))).flags
    assert [(f.code, f.kind) for f in flags] == [("one_class", "broken"), ("near_chance", "broken")]
    assert "“angry” for 100%" in flags[0].message
    # Chance is the most frequent class (happy, 120 of 540), not one in seven.
    assert "always answering “happy” scores 0.222" in flags[1].message


def test_the_scorecard_derives_every_number_from_one_confusion_matrix():
    metrics = metrics_of(matrix(mostly_right))
    card = card_of(metrics)
    assert card.accuracy == round(metrics["accuracy"], 4) and card.flags == ()
    assert card.macro_f1 == round(metrics["macro_f1"], 4)
    assert card.headline == card.accuracy
    assert card.support == dict(zip(FER7, SUPPORT, strict=True))
    assert card.recall["happy"] == round((120 - 6 * 6) / 120, 4)
    # The 4 states: angry+disgust, fear+sad, happy+surprise, neutral summed into blocks.
    assert card.state_accuracy > card.accuracy and card.state_macro_f1 is not None


def test_unmeasured_numbers_are_flagged_and_never_a_headline():
    metrics = metrics_of(matrix(mostly_right))
    own = card_of(metrics, MeasuredOn("the validation split of mine v1", 540, False, 3))
    assert [f.code for f in own.flags] == ["own_split"] and own.headline is None
    assert "not measured on a reference set" in own.flags[0].message
    few = card_of(metrics_of([[24, 0], [0, 24]]) | {"classes": ["happy", "sad"]})
    assert [f.code for f in few.flags] == ["few_test_faces"]
    assert "fewer than 50 test faces of happy (24), sad (24)" in few.flags[0].message
    # Without a confusion matrix, chance is one over the number of classes.
    assert [f.code for f in card_of({"val_accuracy": 0.58}).flags] == ["no_matrix"]
    assert [f.code for f in card_of({"val_accuracy": 0.18}).flags] == ["near_chance", "no_matrix"]


def test_the_list_detail_and_api_show_the_same_scorecard_numbers(admin_client):
    make_version("good", metrics_of(matrix(mostly_right)), active=True)
    bad = make_version("angry-only", metrics_of(matrix(only_angry)))
    own = make_version("own-split", metrics_of(matrix(mostly_right)), reference=False)
    page = admin_client.get(reverse("classifier:models")).content.decode()
    assert "1 version\nflagged" in page
    cell = page.split(f'data-flags="{bad.pk}">')[1].split("</td>")[0]
    assert "⚠ Predicts one class" in cell and "⚠ Near chance" in cell
    row = page.split(f'data-flags="{own.pk}">')[1].split("</tr>")[0]
    assert "Own split" in row and "not on a reference set" in row
    detail = admin_client.get(reverse("classifier:model", args=[bad.pk])).content.decode()
    assert 'id="quality-flags"' in detail and "“angry” for 100%" in detail
    assert "Measured on all of reference v1 (540 faces)" in detail
    body = admin_client.get(f"/api/model-versions/{own.pk}/").json()
    assert body["scorecard"]["accuracy"] == own.card.accuracy
    assert body["scorecard"]["headline"] is None
    assert body["scorecard"]["measured_on"]["reference"] is False
    assert [f["code"] for f in body["flags"]] == ["own_split"] and body["warnings"] == []
    assert f"{own.card.accuracy:.3f}" in row


def test_a_reference_scorecard_is_not_replaced_by_a_look_at_own_data():
    version = make_version("v", metrics_of(matrix(mostly_right)))
    own = MeasuredOn("the validation split of v1", 100, False, None)
    assert not record_measurement(version, metrics_of(matrix(only_angry)), own, "job #2")
    version.refresh_from_db()
    assert version.card.measured_on == REFERENCE and version.card.flags == ()


def test_promoting_a_broken_model_needs_the_confirmation_box(admin_client):
    good = make_version("good", metrics_of(matrix(mostly_right)), active=True)
    bad = make_version("angry-only", metrics_of(matrix(only_angry)))
    url = reverse("classifier:model-promote", args=[bad.pk])
    page = admin_client.get(url).content.decode()
    assert 'id="quality-flags"' in page and 'name="confirm_flags"' in page
    compare = page.split('id="promote-compare"')[1].split("</table>")[0]
    assert f"{bad.card.accuracy:.3f}" in compare and f"{good.card.accuracy:.3f}" in compare

    refused = admin_client.post(url)
    assert refused.status_code == 400 and b'id="promote-error"' in refused.content
    good.refresh_from_db()
    assert good.is_active
    admin_client.post(url, {"confirm_flags": "yes"})
    bad.refresh_from_db()
    assert bad.is_active and bad.promoted_by is not None


def test_promoting_the_good_model_back_over_a_broken_one_is_not_called_worse(admin_client):
    good = make_version("good", metrics_of(matrix(mostly_right)))
    make_version("angry-only", metrics_of(matrix(only_angry)), active=True)
    page = admin_client.get(reverse("classifier:model-promote", args=[good.pk])).content.decode()
    assert "▼ worse" not in page and "worse-warning" not in page
    note = page.split('id="comparison-note"')[1].split("</p>")[0]
    assert "The active model is flagged (predicts one class; near chance)" in note


def test_worse_is_said_only_of_numbers_measured_on_one_reference_set(admin_client):
    make_version("strong", metrics_of(matrix(mostly_right)), active=True)
    weak = make_version("weak", metrics_of(matrix(half_right)))
    page = admin_client.get(reverse("classifier:model-promote", args=[weak.pk])).content.decode()
    warning = page.split('id="worse-warning"')[1].split("</div>")[0]
    assert "Accuracy, Macro-F1" in warning
    own = make_version("own", metrics_of(matrix(lambda i, n: [n // 7] * 7)), reference=False)
    page = admin_client.get(reverse("classifier:model-promote", args=[own.pk])).content.decode()
    assert "worse-warning" not in page and "Not comparable" in page


def test_a_better_unflagged_model_is_promoted_without_warnings(admin_client):
    make_version("weak", metrics_of(matrix(half_right)), active=True)
    better = make_version("better", metrics_of(matrix(mostly_right)))
    url = reverse("classifier:model-promote", args=[better.pk])
    page = admin_client.get(url).content.decode()
    assert "quality-flags" not in page and "worse-warning" not in page
    assert 'name="confirm_flags"' not in page
    assert admin_client.post(url).status_code == 302
    better.refresh_from_db()
    assert better.is_active


def test_more_flagged_audit_groups_than_the_active_model_count_as_worse(admin_client):
    dataset = Dataset.objects.create(name="faces")
    data = DatasetVersion.objects.create(dataset=dataset, number=1, content_hash="h")
    active = make_version("active", metrics_of(matrix(mostly_right)), active=True)
    candidate = make_version("candidate", metrics_of(matrix(mostly_right)))
    for version, findings in ((active, []), (candidate, [{"attribute": "age", "group": "60+"}])):
        AuditReport.objects.create(
            model_version=version, dataset_version=data, attributes=["age"], source="annotator",
            result={"findings": findings},
        )  # fmt: skip
    page = admin_client.get(reverse("classifier:model-promote", args=[candidate.pk]))
    text = page.content.decode()
    warning = text.split('id="worse-warning"')[1].split("</div>")[0]
    assert "on: Flagged groups in the latest bias audit." in warning


def test_the_api_refuses_a_broken_promotion_with_409_unless_confirmed(admin_client):
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


def test_the_compare_page_marks_the_better_figure_only_where_comparable(admin_client):
    strong = make_version("strong", metrics_of(matrix(mostly_right)))
    weak = make_version("weak", metrics_of(matrix(half_right)))
    url = reverse("classifier:model-compare") + f"?ids={strong.pk}&ids={weak.pk}"
    page = admin_client.get(url).content.decode()
    accuracy = page.split("<th>Accuracy</th>")[1].split("</tr>")[0]
    assert accuracy.count("▲ better") == 1
    assert accuracy.index(f"{strong.card.accuracy:.3f}") < accuracy.index("▲ better")
    assert "Recall happy" in page and 'data-figure="recall"' in page
    own = make_version("own", metrics_of(matrix(mostly_right)), reference=False)
    page = admin_client.get(url + f"&ids={own.pk}").content.decode()
    assert "▲ better" not in page and 'id="not-comparable"' in page
    assert "Own split" in page.split("<th>Flags</th>")[1].split("</tr>")[0]


def test_the_migration_fills_a_scorecard_for_every_existing_version(settings):
    dataset = Dataset.objects.create(name="faces")
    data = DatasetVersion.objects.create(dataset=dataset, number=1, content_hash="h", size=100)
    make_version("trained", metrics_of(matrix(mostly_right)), reference=False)
    evaluated = make_version("evaluated", metrics_of(matrix(mostly_right)), reference=False)
    shipped = make_version("shipped", {"val_accuracy": 0.668}, reference=False)
    ModelVersion.objects.filter(pk=shipped.pk).update(source=ModelVersion.Source.SHIPPED)
    Job.objects.create(
        kind="evaluate", status="succeeded", params={"model_version": evaluated.pk},
        result={"dataset_version": data.pk, "evaluated_on": "all of faces v1",
                "metrics": metrics_of(matrix(only_angry)) | {"n": 540}},
    )  # fmt: skip
    ModelVersion.objects.update(scorecard=None)
    migration = importlib.import_module("classifier.migrations.0006_model_version_scorecard")
    migration.fill_scorecards(apps, None)
    cards = {v.name: v.card for v in ModelVersion.objects.all()}
    assert cards["trained"].measured_on.reference is False
    assert cards["evaluated"].measured_on == MeasuredOn("all of faces v1", 540, True, data.pk)
    assert [f.code for f in cards["evaluated"].broken] == ["one_class", "near_chance"]
    shipped_accuracy = json.loads(DEFAULT_EVALUATION.read_text())["metrics"]["accuracy"]
    assert cards["shipped"].accuracy == shipped_accuracy and cards["shipped"].flags == ()
    assert cards["shipped"].measured_on.name == "FER2013 PublicTest (fer2013/val)"


def test_admins_see_a_broken_serving_model_on_home(admin_client, client, django_user_model):
    make_version("angry-only", metrics_of(matrix(only_angry)), active=True)
    home = admin_client.get(reverse("home")).content.decode()
    warning = home.split('id="model-warning"')[1].split("</div>")[0]
    assert "“angry” for 100%" in warning and reverse("classifier:models") in warning
    teacher = django_user_model.objects.create_user("t", password="pw-12345-long")
    client.force_login(teacher)
    warning = client.get(reverse("home")).content.decode().split('id="model-warning"')[1]
    assert "not a reliable signal" in warning and reverse("classifier:models") not in warning
