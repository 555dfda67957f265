"""Admin pages: datasets, jobs, model registry, fairness. Staff only; others get 403."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.permissions import staff_required
from edumood_site.figures import plain, plain_figures
from ml.history import loss_warning

from . import charts
from .choices import JobKind, JobStatus
from .datasets import DatasetImportError
from .forms import JOB_FORMS, DatasetImportForm
from .handlers import jobs_about
from .jobs import create_job, retry_job, start_import
from .models import AuditReport, Dataset, DatasetVersion, Job, ModelVersion
from .services import (
    SCORECARD_ROWS,
    PromotionNeedsConfirmation,
    promote,
    promotion_review,
    training_speeds,
)

# --- datasets -------------------------------------------------------------------------------


@staff_required
def dataset_list(request):
    form = DatasetImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            dataset, job = start_import(
                form.cleaned_data["name"],
                user=request.user,
                upload=form.cleaned_data["file"],
                folder=form.cleaned_data["folder"],
                attribute_source=form.cleaned_data["attribute_source"],
                face_crop=form.cleaned_data["face_crop"],
            )
        except DatasetImportError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Importing a new version of {dataset}.")
            return redirect("classifier:job", job.pk)
    datasets = Dataset.objects.prefetch_related("versions")
    imports = Job.objects.filter(kind=JobKind.IMPORT_DATASET)[:10]
    return render(
        request,
        "classifier/dataset_list.html",
        {"datasets": datasets, "form": form, "imports": imports},
    )


@staff_required
def dataset_detail(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    versions = list(dataset.versions.order_by("-number"))
    if not versions:
        raise Http404("This dataset has no imported version yet.")
    number = request.GET.get("version")
    version = next((v for v in versions if str(v.number) == number), versions[0])
    return render(
        request,
        "classifier/dataset_detail.html",
        {
            "dataset": dataset,
            "version": version,
            "versions": versions,
            "figures": version.figures,
            "models": version.model_versions.all(),
        },
    )


# --- jobs -----------------------------------------------------------------------------------


@staff_required
def job_list(request):
    jobs = Job.objects.select_related("requested_by")
    kind, status = request.GET.get("kind", ""), request.GET.get("status", "")
    if kind:
        jobs = jobs.filter(kind=kind)
    if status:
        jobs = jobs.filter(status=status)
    jobs = list(jobs[:200])
    name_jobs(jobs)
    return render(
        request,
        "classifier/job_list.html",
        {
            "jobs": jobs,
            "kinds": JobKind.choices,
            "statuses": JobStatus.choices,
            "kind": kind,
            "status": status,
            "start_kinds": [(k, JobKind(k).label) for k in JOB_FORMS],
        },
    )


def name_jobs(jobs: list[Job]) -> None:
    """Give each job a `subject`: the dataset version and model version it is about, in words
    (two queries for the whole list), so a list of jobs tells one from another."""

    def ids(key):
        return {
            pk for job in jobs for pk in ((job.result or {}).get(key), job.params.get(key))
            if isinstance(pk, int)
        }  # fmt: skip

    datasets = DatasetVersion.objects.select_related("dataset").in_bulk(ids("dataset_version"))
    models = ModelVersion.objects.in_bulk(ids("model_version"))
    for job in jobs:
        result = job.result or {}
        dataset = datasets.get(result.get("dataset_version") or job.params.get("dataset_version"))
        model = models.get(job.params.get("model_version") or result.get("model_version"))
        parts = [f"model {model.name} (#{model.pk})" if model else "", str(dataset or "")]
        if job.kind == JobKind.IMPORT_DATASET and not dataset:
            parts.append(job.params.get("name", ""))
        job.subject = " · ".join(p for p in parts if p)


@staff_required
def job_start(request, kind):
    form_class = JOB_FORMS.get(kind)
    if form_class is None:
        raise Http404("No such job kind.")
    form = form_class(request.POST or None, initial=request.GET.dict())
    if request.method == "POST" and form.is_valid():
        job = create_job(form.kind, form.params(), user=request.user)
        return redirect("classifier:job", job.pk)
    basic = getattr(form, "basic_fields", None)
    context = {"form": form, "kind_label": JobKind(kind).label}
    if basic:
        context["basic"] = [form[name] for name in basic]
        context["advanced"] = [field for field in form if field.name not in basic]
        context["advanced_errors"] = any(field.errors for field in context["advanced"])
        context["estimate"] = {
            "speeds": training_speeds(),
            "sizes": dict(DatasetVersion.objects.values_list("pk", "size")),
        }
    return render(request, "classifier/job_start.html", context)


@staff_required
def job_detail(request, pk):
    job = get_object_or_404(Job, pk=pk)
    history = (job.result or {}).get("history") or []
    context = {
        "job": job,
        "links": _job_links(job),
        "figures": {},
        "loss_warning": loss_warning(history),
    }
    if job.kind == JobKind.KFOLD and job.status == JobStatus.SUCCEEDED:
        context["kfold"] = {"job": job, "summary": kfold_summary(job.result)}
        context["figures"] = plain_figures({f"kfold_{job.pk}": charts.kfold_chart(job.result)})
    return render(request, "classifier/job_detail.html", context)


def _job_links(job: Job) -> list[tuple[str, str]]:
    """Pages of what a job used and made, for the job page."""
    result, params = job.result or {}, job.params
    links = []
    for key in ("model_version",):
        pk = result.get(key) or params.get(key)
        if pk:
            links.append((f"Model version #{pk}", reverse("classifier:model", args=[pk])))
    dataset_pk = result.get("dataset") or params.get("dataset")
    version = DatasetVersion.objects.filter(
        pk=result.get("dataset_version")
        or result.get("identical_to")
        or params.get("dataset_version")
    ).first()
    if version is not None:
        url = reverse("classifier:dataset", args=[version.dataset_id])
        links.append((str(version), f"{url}?version={version.number}"))
    elif dataset_pk and result:
        links.append(("Dataset", reverse("classifier:dataset", args=[dataset_pk])))
    if result.get("audit"):
        url = reverse("classifier:audit", args=[result["audit"]])
        links.append((f"Audit #{result['audit']}", url))
    if "before" in result and "after" in result:
        url = reverse("classifier:fairness-compare")
        query = f"?before={result['before']['audit']}&after={result['after']['audit']}"
        links.append(("Before / after", url + query))
    return links


@staff_required
@require_POST
def job_cancel(request, pk):
    job = get_object_or_404(Job, pk=pk)
    if not job.is_terminal:
        job.request_cancel()
        stops = "" if job.is_terminal else "The job stops after the current batch. "
        messages.info(request, f"Cancel requested. {stops}{job.cancel_outcome()}")
    return redirect("classifier:job", pk)


@staff_required
@require_POST
def job_retry(request, pk):
    job = get_object_or_404(Job, pk=pk)
    if not job.is_terminal or job.status == JobStatus.SUCCEEDED:
        messages.error(request, "Only a failed or cancelled job can be retried.")
        return redirect("classifier:job", pk)
    return redirect("classifier:job", retry_job(job, user=request.user).pk)


# --- model registry -------------------------------------------------------------------------


@staff_required
def model_list(request):
    versions = list(ModelVersion.objects.select_related("dataset_version__dataset", "created_by"))
    flagged = sum(1 for version in versions if version.card.broken)
    return render(request, "classifier/model_list.html", {"versions": versions, "flagged": flagged})


def kfold_summary(result: dict) -> list[tuple[str, float, float]]:
    """(metric, mean, std) rows of an ml.cv.kfold result."""
    mean, std = result.get("mean") or {}, result.get("std") or {}
    return [(metric, mean.get(metric), std.get(metric)) for metric in charts.REPORTED_METRICS]


@staff_required
def model_detail(request, pk):
    version = get_object_or_404(
        ModelVersion.objects.select_related("dataset_version__dataset"), pk=pk
    )
    kfolds = [
        {"job": j, "summary": kfold_summary(j.result)}
        for j in jobs_about(version, JobKind.KFOLD)
        if j.status == JobStatus.SUCCEEDED
    ]
    evaluations = [
        j for j in jobs_about(version, JobKind.EVALUATE) if j.status == JobStatus.SUCCEEDED
    ]
    card = version.card
    figures = plain_figures(
        {
            "confusion_counts": charts.confusion_matrix(version.card, normalised=False),
            "confusion_normalised": charts.confusion_matrix(version.card, normalised=True),
            "curves": charts.training_curves(version.history),
            **{f"kfold_{k['job'].pk}": charts.kfold_chart(k["job"].result) for k in kfolds},
        }
    )
    return render(
        request,
        "classifier/model_detail.html",
        {
            "version": version,
            "card": version.card,
            "rows": [(label, getattr(version.card, key)) for key, label in SCORECARD_ROWS],
            "per_class": [(c, r, version.card.support.get(c)) for c, r in card.recall.items()],
            "loss_warning": loss_warning(version.history),
            "figures": figures,
            "kfolds": kfolds,
            "evaluations": evaluations,
            "audits": version.audits.select_related("dataset_version__dataset"),
        },
    )


def better_marks(values: list, comparable: bool) -> list[bool]:
    """Which cells of a compare row hold the best figure (higher is better): none when the
    versions cannot be ranked, or when all are equal."""
    known = [v for v in values if v is not None]
    if not comparable or len(known) < 2 or len({round(v, 3) for v in known}) == 1:
        return [False] * len(values)
    best = round(max(known), 3)
    return [v is not None and round(v, 3) == best for v in values]


@staff_required
def model_compare(request):
    """Versions side by side from their scorecards, flags first, the better figure per row
    marked where the scorecards can rank them (same reference set, none flagged)."""
    ids = [int(i) for i in request.GET.getlist("ids") if i.isdigit()]
    versions = list(
        ModelVersion.objects.filter(pk__in=ids).select_related("dataset_version__dataset")
    )
    if len(versions) < 2:
        messages.error(request, "Tick two or more versions to compare.")
        return redirect("classifier:models")
    cards = [v.card for v in versions]
    comparable = all(cards[0].comparable_with(card) for card in cards[1:])
    rows = []
    for key, label in SCORECARD_ROWS:
        values = [getattr(card, key) for card in cards]
        rows.append((label, list(zip(values, better_marks(values, comparable), strict=True))))
    classes = list(dict.fromkeys(c for card in cards for c in card.recall))
    for name in classes:
        values = [card.recall.get(name) for card in cards]
        marks = better_marks(values, comparable)
        rows.append((f"Recall {name}", list(zip(values, marks, strict=True))))
    return render(
        request,
        "classifier/model_compare.html",
        {
            "versions": versions,
            "rows": rows,
            "comparable": comparable,
            "figures": plain_figures({"recall": charts.recall_chart(versions)}),
        },
    )


@staff_required
def model_promote(request, pk):
    """The candidate beside the active version; a flagged one needs the confirmation box."""
    version = get_object_or_404(ModelVersion, pk=pk)
    error = ""
    if request.method == "POST":
        confirmed = request.POST.get("confirm_flags") == "yes"
        try:
            promote(version, user=request.user, confirmed=confirmed)
        except PromotionNeedsConfirmation:
            error = "Tick the box to confirm that you promote this flagged model on purpose."
        else:
            messages.success(request, f"{version} is now the active model.")
            return redirect("classifier:model", pk)
    context = {"version": version, "review": promotion_review(version), "error": error}
    return render(request, "classifier/model_promote.html", context, status=400 if error else 200)


# --- fairness (the architecture puts this in analytics; it lives here while that app is
# being built by another engineer) -----------------------------------------------------------


def audit_columns(audit: AuditReport, prefix: str = "audit") -> list[dict]:
    """Per attribute column: rows per group (flagged marked) and the chart, for the templates."""
    flagged = {(f["attribute"], f["group"]) for f in audit.result.get("findings", [])}
    columns = []
    for index, (column, table) in enumerate(audit.result.get("attributes", {}).items()):
        for group, entry in table["groups"].items():
            entry["flagged"] = (column, group) in flagged
        columns.append(
            {
                "name": column,
                "key": f"{prefix}_{index}",
                "table": table,
                "rows": sorted(table["groups"].items(), key=lambda item: -item[1]["accuracy"]),
                "figure": plain(charts.fairness_chart(column, table)),
            }
        )
    return columns


@staff_required
def audit_detail(request, pk):
    audit = get_object_or_404(
        AuditReport.objects.select_related("model_version", "dataset_version__dataset"), pk=pk
    )
    columns = audit_columns(audit)
    figures = {column["key"]: column["figure"] for column in columns}
    return render(
        request,
        "classifier/audit_detail.html",
        {"audit": audit, "columns": columns, "figures": figures},
    )


@staff_required
def fairness(request):
    """The fairness dashboard's entry: every audit (or one model's), to open or to compare."""
    picked = _picked_audit(request, "audit")
    if picked is not None:  # the audit picker
        return redirect("classifier:audit", picked.pk)
    audits = AuditReport.objects.select_related("model_version", "dataset_version__dataset")
    model = None
    if request.GET.get("model", "").isdigit():
        model = get_object_or_404(ModelVersion, pk=request.GET["model"])
        audits = audits.filter(model_version=model)
    return render(request, "classifier/fairness.html", {"audits": audits, "model": model})


def _picked_audit(request, name: str) -> AuditReport | None:
    value = request.GET.get(name, "")
    return AuditReport.objects.filter(pk=value).first() if value.isdigit() else None


def _group_accuracy(table: dict, group: str) -> float | None:
    entry = table["groups"].get(group)
    return entry["accuracy"] if entry and entry["n"] else None  # no samples: no data


@staff_required
def fairness_compare(request):
    before, after = _picked_audit(request, "before"), _picked_audit(request, "after")
    if before is None or after is None:
        messages.info(request, "Pick two audits to compare: one before and one after mitigation.")
        return redirect("classifier:fairness")
    pairs = []
    after_columns = {c["name"]: c for c in audit_columns(after, "after")}
    figures = {}
    for column in audit_columns(before, "before"):
        other = after_columns.get(column["name"])
        if other is None:
            continue
        groups = sorted(set(column["table"]["groups"]) | set(other["table"]["groups"]))
        changes = [
            (g, _group_accuracy(column["table"], g), _group_accuracy(other["table"], g))
            for g in groups
        ]
        pairs.append({"name": column["name"], "before": column, "after": other, "changes": changes})
        figures.update({column["key"]: column["figure"], other["key"]: other["figure"]})
    return render(
        request,
        "classifier/fairness_compare.html",
        {"before": before, "after": after, "pairs": pairs, "figures": figures},
    )
