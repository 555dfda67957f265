"""The admin API (issue 8's contract) and the admin pages: fields, status codes, permissions."""

import pytest
from django.urls import reverse

from classifier.choices import JobKind, JobStatus
from classifier.jobs import create_job
from classifier.models import Dataset, Job, ModelVersion
from tests.strict_csp import assert_strict_csp_possible

from .conftest import FAST_TRAIN, dataset_zip_bytes, run_queued, upload

pytestmark = pytest.mark.django_db

JOB_FIELDS = {"id", "kind", "status", "progress", "message", "result", "error", "model_version"}


def test_upload_train_follow_and_promote_through_the_api(admin_client, media):
    response = admin_client.post(
        "/api/datasets/", {"name": "faces", "file": upload(dataset_zip_bytes())}
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == {"dataset", "job"}
    run_queued(Job.objects.get(pk=body["job"]))
    dataset = admin_client.get(f"/api/datasets/{body['dataset']}/").json()
    assert dataset["class_counts"] == {"happy": 24, "sad": 24}
    assert dataset["attribute_counts"]["gender"] == {"female": 24, "male": 24}
    [version] = dataset["versions"]
    assert version["number"] == 1 and version["attribute_source"] == "annotator"
    assert admin_client.get("/api/datasets/").json()["count"] == 1

    response = admin_client.post(
        "/api/jobs/",
        {"kind": "train", "dataset_version": version["id"], "params": FAST_TRAIN},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    job = response.json()
    assert set(job) >= JOB_FIELDS and job["status"] == "queued" and job["model_version"] is None
    run_queued(Job.objects.get(pk=job["id"]))
    job = admin_client.get(f"/api/jobs/{job['id']}/").json()
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    assert job["result"]["history"][0]["epoch"] == 1
    model = admin_client.get(f"/api/model-versions/{job['model_version']}/").json()
    assert model["dataset_version"] == version["id"] and model["is_active"] is False
    assert "confusion_matrix" in model["metrics"]

    # One epoch on 48 images answers one class for all ten validation images: flagged, and
    # promoted only when the request confirms it.
    assert [flag["code"] for flag in model["warnings"]] == ["one_class", "near_chance"]
    refused = admin_client.post(f"/api/model-versions/{model['id']}/promote/")
    assert refused.status_code == 409 and "Predicts one class" in refused.json()["detail"]
    promoted = admin_client.post(
        f"/api/model-versions/{model['id']}/promote/",
        {"confirm": True},
        content_type="application/json",
    )
    assert promoted.status_code == 200 and promoted.json()["is_active"] is True
    assert promoted.json()["promoted_by"] == "boss"
    listed = admin_client.get("/api/jobs/?kind=train&status=succeeded").json()
    assert [j["id"] for j in listed["results"]] == [job["id"]]
    assert admin_client.get("/api/jobs/?kind=audit").json()["count"] == 0


def test_job_requests_are_validated_like_the_forms(admin_client, imported_version):
    def post(payload):
        return admin_client.post("/api/jobs/", payload, content_type="application/json")

    missing = post({"kind": "train", "params": FAST_TRAIN})
    assert missing.status_code == 400 and "dataset_version" in missing.json()
    bad_arch = post({"kind": "train", "dataset_version": imported_version.pk,
                     "params": {**FAST_TRAIN, "arch": "resnet-9000"}})  # fmt: skip
    assert bad_arch.status_code == 400 and "arch" in bad_arch.json()
    assert post({"kind": "diagnose"}).status_code == 400
    no_column = post({"kind": "audit", "dataset_version": imported_version.pk,
                      "model_version": 12345, "params": {"attributes": "shoe_size"}})  # fmt: skip
    assert no_column.status_code == 400
    body = no_column.json()
    # Whole-request errors are in `detail` (the README's one error shape), never `__all__`.
    assert "__all__" not in body and "model_version" in body
    assert "has no column shoe_size" in body["detail"]


def test_cancel_and_retry_answer_202_or_409(admin_client, imported_version):
    job = create_job(JobKind.TRAIN, {**FAST_TRAIN, "dataset_version": imported_version.pk})
    cancelled = admin_client.post(f"/api/jobs/{job.pk}/cancel/")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert admin_client.post(f"/api/jobs/{job.pk}/cancel/").status_code == 409
    retried = admin_client.post(f"/api/jobs/{job.pk}/retry/")
    assert retried.status_code == 202 and retried.json()["status"] == "queued"
    new = Job.objects.get(pk=retried.json()["id"])
    assert new.retry_of == job and new.params["epochs"] == 1
    assert admin_client.post(f"/api/jobs/{new.pk}/retry/").status_code == 409
    assert admin_client.get("/api/jobs/999999/").status_code == 404


ADMIN_API = [
    ("get", "/api/datasets/"), ("post", "/api/datasets/"), ("get", "/api/datasets/{dataset}/"),
    ("get", "/api/jobs/"), ("post", "/api/jobs/"), ("get", "/api/jobs/{job}/"),
    ("post", "/api/jobs/{job}/cancel/"), ("post", "/api/jobs/{job}/retry/"),
    ("get", "/api/model-versions/"), ("get", "/api/model-versions/{model}/"),
    ("post", "/api/model-versions/{model}/promote/"), ("get", "/api/audits/"),
    ("get", "/api/audits/{audit}/"),
]  # fmt: skip


@pytest.fixture
def objects(trained_version, imported_version):
    audit = run_queued(create_job(JobKind.AUDIT, {
        "model_version": trained_version.pk, "dataset_version": imported_version.pk,
        "min_group_size": 2}))  # fmt: skip
    return {
        "dataset": imported_version.dataset_id,
        "job": trained_version.job_id,
        "model": trained_version.pk,
        "audit": audit.result["audit"],
    }


def _pages(objects):
    return [
        reverse("accounts:people"),
        reverse("classifier:datasets"),
        reverse("classifier:dataset", args=[objects["dataset"]]),
        reverse("classifier:jobs"),
        reverse("classifier:job", args=[objects["job"]]),
        reverse("classifier:job-start", args=["train"]),
        reverse("classifier:job-start", args=["audit"]),
        reverse("classifier:models"),
        reverse("classifier:model", args=[objects["model"]]),
        reverse("classifier:model-promote", args=[objects["model"]]),
        reverse("classifier:audit", args=[objects["audit"]]),
    ]


def test_teachers_get_403_on_every_admin_action_and_page_staff_see_the_pages(
    client, admin_user, teacher, objects
):
    for method, path in ADMIN_API:
        url = path.format(**objects)
        assert getattr(client, method)(url).status_code in (401, 403), (method, url)
    client.force_login(teacher)
    for method, path in ADMIN_API:
        url = path.format(**objects)
        assert getattr(client, method)(url).status_code == 403, (method, url)
    for url in _pages(objects):
        assert client.get(url).status_code == 403, url
    promote_url = reverse("classifier:model-promote", args=[objects["model"]])
    assert client.post(promote_url).status_code == 403
    assert not ModelVersion.objects.filter(is_active=True).exists()
    assert Job.objects.filter(status=JobStatus.QUEUED).count() == 0

    client.force_login(admin_user)
    job_page = reverse("classifier:job", args=[objects["job"]])
    for url in [*_pages(objects), job_page, reverse("accounts:tokens")]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_strict_csp_possible(response.content.decode(), url)
    model_page = client.get(reverse("classifier:model", args=[objects["model"]])).content.decode()
    assert 'data-figure="confusion_counts"' in model_page and "Macro-F1" in model_page
    audit_page = client.get(reverse("classifier:audit", args=[objects["audit"]])).content.decode()
    assert "Attribute labels: Annotator" in audit_page and "audit_0" in audit_page
    same_twice = f"?ids={objects['model']}&ids={objects['model']}"
    compare = client.get(reverse("classifier:model-compare") + same_twice)
    assert compare.status_code == 302  # one distinct version is not a comparison


def test_the_start_form_and_the_upload_form_queue_jobs(admin_client, imported_version, media):
    page = admin_client.get(reverse("classifier:job-start", args=["train"]))
    form = page.context["form"]
    # What a browser sends for the page's fields as shown, with a few changed; an unticked
    # checkbox is not sent at all.
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data = {k: v for k, v in data.items() if v is not True and v is not False}
    data.update(dataset_version=imported_version.pk, epochs=1, batch_size=16, lr=0.05)
    response = admin_client.post(reverse("classifier:job-start", args=["train"]), data)
    job = Job.objects.get(kind=JobKind.TRAIN)
    assert response.status_code == 302 and response["Location"] == reverse(
        "classifier:job", args=[job.pk]
    )
    assert job.params["dataset_version"] == imported_version.pk and job.params["augment"] is False
    response = admin_client.post(
        reverse("classifier:datasets"),
        {"name": "more faces", "file": upload(dataset_zip_bytes(per_class=6)),
         "attribute_source": "self-reported", "face_crop": "never"},
    )  # fmt: skip
    assert response.status_code == 302
    assert Dataset.objects.filter(name="more faces").exists()
    assert Job.objects.get(
        kind=JobKind.IMPORT_DATASET, params__dataset__isnull=False, pk__gt=job.pk
    )


# Every recipe field of ml.train.TrainConfig with a value other than its default (the device is
# the worker's, from EDUMOOD_DEVICE, not part of a recipe).
NON_DEFAULT_RECIPE = {
    "arch": "edu-vgg-s", "epochs": 1, "batch_size": 16, "lr": 0.05, "weight_decay": 0.05,
    "optimizer": "adamw", "scheduler": "cosine", "patience": 2, "augment": False,
    "class_weighting": True, "label_smoothing": 0.2, "seed": 3, "normalisation": "equalize",
    "input_size": 48, "precision": "fp32", "input_blur": 0.5, "small_faces": 0.3,
}  # fmt: skip


def _trained_recipe(client, dataset_version, params: dict) -> dict:
    """Train through the API with these params; the recipe stored with the new version."""
    response = client.post(
        "/api/jobs/",
        {"kind": "train", "dataset_version": dataset_version.pk, "params": params},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    job = run_queued(Job.objects.get(pk=response.json()["id"]))
    assert job.status == "succeeded", job.error
    return ModelVersion.objects.get(pk=job.result["model_version"]).params


def test_every_recipe_field_sent_to_the_api_reaches_training(admin_client, imported_version):
    from ml.recipe import TrainConfig, recipe_options

    assert {o.name for o in recipe_options()} == set(NON_DEFAULT_RECIPE)
    config = _trained_recipe(admin_client, imported_version, NON_DEFAULT_RECIPE)
    assert {k: config[k] for k in NON_DEFAULT_RECIPE} == NON_DEFAULT_RECIPE
    assert config["device"] == "cpu" and set(config) == {f for f in TrainConfig().__dict__}


def test_unknown_parameters_are_refused_by_name(admin_client, imported_version):
    response = admin_client.post(
        "/api/jobs/",
        {"kind": "train", "dataset_version": imported_version.pk,
         "params": {**FAST_TRAIN, "optimiser": "adamw", "device": "cuda"}},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400
    assert {"optimiser", "device"} <= set(response.json())
    assert not Job.objects.filter(kind=JobKind.TRAIN).exists()


def test_list_parameters_are_taken_as_json_lists(admin_client, trained_version, imported_version):
    response = admin_client.post(
        "/api/jobs/",
        {"kind": "audit", "model_version": trained_version.pk,
         "dataset_version": imported_version.pk, "params": {"attributes": ["age_bin", "gender"]}},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 202, response.content
    assert response.json()["params"]["attributes"] == ["age_bin", "gender"]
    wrong = admin_client.post(
        "/api/jobs/",
        {"kind": "audit", "model_version": trained_version.pk,
         "dataset_version": imported_version.pk, "params": {"attributes": ["shoe_size"]}},
        content_type="application/json",
    )  # fmt: skip
    assert wrong.status_code == 400 and "no column shoe_size" in wrong.json()["detail"]


def test_the_schema_documents_each_job_kinds_parameters(admin_client):
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    components = schema.json()["components"]["schemas"]

    def resolve(node):
        ref = node.get("$ref") or node.get("allOf", [{}])[0].get("$ref")
        return components[ref.rsplit("/", 1)[1]] if ref else node

    train = components["TrainJobParamsRequest"]["properties"]
    assert resolve(train["optimizer"])["enum"] == ["sgd", "adamw"]
    assert train["label_smoothing"]["type"] == "number" and "device" not in train
    audit = components["AuditJobParamsRequest"]["properties"]
    assert audit["attributes"]["type"] == "array"
    params = resolve(components["JobCreateRequest"]["properties"]["params"])
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in params["oneOf"]} == {
        f"{kind}JobParamsRequest" for kind in ("Train", "Evaluate", "Kfold", "Audit", "Mitigate")
    }


def test_a_job_without_lr_trains_at_its_optimizers_default(admin_client, imported_version):
    params = {**FAST_TRAIN, "optimizer": "adamw"}
    del params["lr"]
    assert _trained_recipe(admin_client, imported_version, params)["lr"] == 0.002
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    lr = schema.json()["components"]["schemas"]["TrainJobParamsRequest"]["properties"]["lr"]
    assert "0.1 for sgd, 0.002 for adamw" in lr["description"]


def test_every_job_option_has_one_definition_that_cli_form_schema_and_handler_share(
    admin_client,
):
    """Each kind's options (ml.options) reach its CLI subcommand, page form and API schema with
    the default and bounds defined there, and the handler reads the same defaults."""
    from classifier.forms import JOB_FORMS
    from ml import options as ml_options
    from ml.__main__ import build_parser

    subcommands = build_parser()._subparsers._group_actions[0].choices
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    components = schema.json()["components"]["schemas"]
    kinds = {
        "train": [ml_options.SplitOptions],
        "kfold": [ml_options.KFoldOptions, ml_options.SplitOptions],
        "audit": [ml_options.AuditOptions],
        "mitigate": [ml_options.MitigateOptions, ml_options.SplitOptions],
    }  # fmt: skip
    for kind, classes in kinds.items():
        for options_class in classes:
            for option in ml_options.options_of(options_class):
                cli = subcommands[kind]
                assert cli.get_default(option.cli_dest) == (
                    None if option.required else option.default
                ), (kind, option.name)
                if kind == "kfold" and options_class is ml_options.SplitOptions:
                    continue  # a web k-fold takes ml.cv's default, which is this one
                if kind == "mitigate" and options_class is ml_options.SplitOptions:
                    continue  # a mitigation reuses its version's training split
                field = JOB_FORMS[kind].base_fields[option.name]
                prop = components[f"{kind.capitalize()}JobParamsRequest"]["properties"]
                assert option.name in prop, (kind, option.name)
                if option.default not in ("", ()) and not option.required:
                    assert field.initial == option.default, (kind, option.name)
                for bound in ("minimum", "maximum"):
                    value = getattr(option, bound)
                    assert getattr(field, f"{bound[:3]}_value", None) == value, option.name
                    assert prop[option.name].get(bound) == value, (kind, option.name)
                if not option.required:
                    given = {
                        o.name: "x" for o in ml_options.options_of(options_class) if o.required
                    }
                    handler = ml_options.from_params(options_class, given)
                    assert getattr(handler, option.name) == option.default, option.name
