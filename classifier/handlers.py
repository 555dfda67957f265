"""Job handlers: train, evaluate, k-fold, audit, mitigate, and a worker's diagnostics (the
import job's is in datasets.py). classifier/jobs.py's table says which kind each performs.

Each handler reads its parameters from the job, loads dataset versions from their cache, calls
`ml/` with the job's progress and cancel hooks, and stores what came out (model versions, audit
reports, metrics on the job's result). None of the ML itself lives here.
"""

import platform
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db.models import F

from edumood_site import storage
from edumood_site.work import PROGRESS_WRITE_INTERVAL, Throttle, WorkCancelled
from ml.errors import DataError
from ml.options import AuditOptions, KFoldOptions, MitigateOptions, SplitOptions, from_params
from ml.recipe import TrainConfig, override, recipe_names
from ml.scorecard import MeasuredOn

from .datasets import load_version
from .models import AuditReport, DatasetVersion, Job, ModelVersion
from .services import (
    JobParamsError,
    load_classifier,
    measure_calibration,
    record_measurement,
    register_model_version,
    set_calibration,
)


def train_config(params: dict):
    """The ml.recipe.TrainConfig of job parameters: every recipe field they give, the rest at
    its default, and the device from this worker's settings."""
    values = {k: params[k] for k in recipe_names() if params.get(k) is not None}
    return TrainConfig(**values, device=settings.EDUMOOD_DEVICE)


def _dataset_version(params: dict, key: str = "dataset_version") -> DatasetVersion:
    """The dataset version that parameters name under `key` (a job's, or a recipe's that a
    mitigation reuses from the version's training job)."""
    pk = params.get(key)
    version = DatasetVersion.objects.filter(pk=pk).first() if pk else None
    if version is None:
        raise JobParamsError(f"Dataset version {pk!r} does not exist.")
    return version


def _model_version(job: Job) -> ModelVersion:
    pk = job.params.get("model_version")
    version = ModelVersion.objects.filter(pk=pk).first() if pk else None
    if version is None:
        raise JobParamsError(f"Model version {pk!r} does not exist.")
    return version


def _update_result(job: Job, **values) -> None:
    """Merge values into the job's live result (what the job page charts while it runs)."""
    job.result = {**(job.result or {}), **values}
    Job.objects.filter(pk=job.pk).update(result=job.result)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return f" · ETA {minutes}m {secs:02d}s" if minutes else f" · ETA {secs}s"


def training_progress(job: Job):
    """A progress callback for ml.train: throttled progress, plus the per-epoch history."""
    history: list[dict] = list((job.result or {}).get("history", []))
    result_writes = Throttle(PROGRESS_WRITE_INTERVAL)

    def report(p) -> None:
        job.set_progress(
            p.fraction,
            f"Epoch {p.epoch}/{p.epochs} · step {p.step}/{p.steps} · loss {p.loss:.3f}"
            + _eta(p.eta_seconds),
        )
        live = {"epoch": p.epoch, "epochs": p.epochs, "eta_seconds": p.eta_seconds}
        if p.step == p.steps:
            # The end of an epoch is reported twice: after its last batch, then after validation.
            entry = {"epoch": p.epoch, "loss": p.loss, "accuracy": p.accuracy,
                     "val_accuracy": p.val_accuracy}  # fmt: skip
            if history and history[-1]["epoch"] == p.epoch:
                history[-1] = entry
            else:
                history.append(entry)
            live["history"] = history
        if not result_writes.ready(force=p.step == p.steps):
            return
        _update_result(job, **live)

    return report


# --- train ----------------------------------------------------------------------------------


def _split(version: DatasetVersion, params: dict):
    """(train, validation) of a training run's parameters: all of `version` and the separate
    validation version they name, else a stratified split of `version`."""
    from ml.data import stratified_split

    data = load_version(version)
    if params.get("val_dataset_version"):
        return data, load_version(_dataset_version(params, "val_dataset_version"))
    fraction = from_params(SplitOptions, params).val_fraction
    return stratified_split(data, fraction, int(params.get("seed", TrainConfig.seed)))


def validation_measured_on(version: DatasetVersion, params: dict, val_set):
    """What a trained model's validation scores were measured on (its scorecard's data): a
    separate dataset version is a reference set, a split of its own upload is not."""
    if params.get("val_dataset_version"):
        other = _dataset_version(params, "val_dataset_version")
        return MeasuredOn(f"all of {other}", len(val_set), True, other.pk)
    return MeasuredOn(f"the validation split of {version}", len(val_set), False, version.pk)


def score(checkpoint: dict, val_set) -> tuple[dict, dict | None]:
    """(metrics, calibration) of a checkpoint's best weights on val_set: its own metrics plus
    ml.evaluate's, and the state-level errors that correct session shares (None without
    validation data)."""
    from ml.evaluate import classification_metrics, predict_labels
    from ml.predict import Classifier

    if val_set is None:
        return checkpoint["metrics"], None
    classifier = Classifier(checkpoint, device=settings.EDUMOOD_DEVICE)
    predictions = predict_labels(classifier, val_set)
    metrics = classification_metrics(val_set.labels, predictions, list(val_set.classes))
    return {**checkpoint["metrics"], **metrics}, measure_calibration(classifier, val_set)


def store_checkpoint(
    job: Job, checkpoint: dict, dataset_version, name: str, calibration: dict | None, measured_on
) -> ModelVersion:
    """Write a checkpoint to a scratch file and register it (stored) as a model version."""
    from ml.checkpoint import save_checkpoint

    with tempfile.TemporaryDirectory(prefix="edumood-") as scratch:
        path = Path(scratch) / f"job-{job.pk}-final.pt"
        save_checkpoint(path, checkpoint)
        version = register_model_version(
            path, name=name, job=job, user=job.requested_by, calibration=calibration,
            dataset_version=dataset_version, measured_on=measured_on,
        )  # fmt: skip
    job.add_log(f"Model version #{version.pk} stored (trained on {checkpoint['device']})")
    return version


def train_and_register(job: Job, train_set, val_set, config, dataset_version, name):
    """Train, score the best weights on the validation set, store them as a model version.

    ml.train writes its checkpoint after every epoch (atomically), and it is stored at once
    (storage.WorkingCopy), so a job redelivered after its worker died, on this host or another,
    resumes from the last stored epoch. Only a finished run becomes a version: a cancelled one
    is no result to compare or promote, unless the admin asked to keep it
    (`keep_if_cancelled`), and then its name says so.
    """
    from ml.history import loss_warning
    from ml.train import train

    resume = storage.WorkingCopy(job.resume_point)
    report = training_progress(job)

    def progress(p) -> None:
        report(p)
        resume.sync()  # the epoch's checkpoint, stored once ml.train has written it

    with resume as path:
        checkpoint = train(
            train_set, val_set, config, progress=progress,
            should_stop=job.should_stop, checkpoint_path=path, resume=True,
        )  # fmt: skip
    resume.discard()
    if checkpoint.get("stopped_early"):
        job.add_log(
            f"Stopped early after epoch {checkpoint['epoch']} of {config.epochs}: no validation "
            f"improvement for {config.patience} epochs; kept the best epoch "
            f"({checkpoint['metrics'].get('best_epoch')})"
        )
    warning = loss_warning(checkpoint["history"])
    if warning:
        job.add_log("Warning: " + warning)
    cancelled = checkpoint["cancelled"]
    if cancelled and not (checkpoint["history"] and job.params.get("keep_if_cancelled")):
        raise WorkCancelled({**(job.result or {}), "history": checkpoint["history"]})
    if cancelled:
        name = f"{name} (cancelled after epoch {checkpoint['epoch']})"
    checkpoint["metrics"], calibration = score(checkpoint, val_set)
    measured_on = validation_measured_on(dataset_version, job.params, val_set)
    version = store_checkpoint(job, checkpoint, dataset_version, name, calibration, measured_on)
    if cancelled:
        raise WorkCancelled({**(job.result or {}), "model_version": version.pk})
    return version


def train_job(job: Job) -> dict:
    """Train a model on a dataset version; the best epoch becomes a new model version."""
    params = job.params
    dataset_version = _dataset_version(params)
    train_set, val_set = _split(dataset_version, params)
    config = train_config(params)
    job.add_log(
        f"Training {config.arch} on {dataset_version} ({len(train_set)} train, "
        f"{len(val_set)} validation images) for {config.epochs} epochs"
    )
    _update_result(job, history=[], epochs=config.epochs)
    name = params.get("name") or f"{config.arch} on {dataset_version}"
    version = train_and_register(job, train_set, val_set, config, dataset_version, name)
    return {
        **(job.result or {}),
        "model_version": version.pk,
        "device": version.device,
        "metrics": version.metrics,
    }


# --- evaluate, k-fold -----------------------------------------------------------------------


def evaluation_data(version: ModelVersion, dataset_version: DatasetVersion):
    """(ImageSet, MeasuredOn): the images a model version is fairly scored on, and what they are.

    On the version it was trained on, that is the validation split its training job held out
    (the same stratified split again: same data, fraction and seed), which is no reference set;
    anywhere else, all images.
    """
    data = load_version(dataset_version)
    params = version.job.params if version.job else {}
    trained_here = version.dataset_version_id == dataset_version.pk and version.job is not None
    if trained_here and not params.get("val_dataset_version"):
        _, held_out = _split(dataset_version, params)
        name = f"the validation split of {dataset_version} held out from training"
        return held_out, MeasuredOn(name, len(held_out), False, dataset_version.pk)
    return data, MeasuredOn(f"all of {dataset_version}", len(data), True, dataset_version.pk)


def evaluate_job(job: Job) -> dict:
    """Metrics of a model version on a dataset version (its held-out part, if trained on it)."""
    from ml.evaluate import classification_metrics, predict_labels, true_labels_for

    version, dataset_version = _model_version(job), _dataset_version(job.params)
    data, measured_on = evaluation_data(version, dataset_version)
    subset = measured_on.name
    job.set_progress(0.1, f"Predicting {len(data)} images", force=True)
    classifier = load_classifier(version)
    y_true = true_labels_for(data, list(version.classes))
    y_pred = predict_labels(classifier, data)
    if not version.calibration:
        # Faces the version was not trained on (see evaluation_data): its first calibration.
        try:
            set_calibration(version, measure_calibration(classifier, data))
            job.add_log(f"Calibration of {version} measured on {subset}")
        except DataError as exc:
            job.add_log(f"No calibration measured: {exc}")
    metrics = classification_metrics(y_true, y_pred, list(version.classes))
    if record_measurement(version, metrics, measured_on, f"evaluation job #{job.pk}"):
        job.add_log(f"Scorecard of {version} now from {subset}")
    else:
        job.add_log(f"Scorecard kept: {subset} is not a reference set, its current one is")
    return {
        "model_version": version.pk,
        "dataset_version": dataset_version.pk,
        "evaluated_on": subset,
        "metrics": metrics,
    }


def kfold_job(job: Job) -> dict:
    """Stratified k-fold of a training recipe on a dataset version (ml.cv.kfold).

    With a model version, its architecture and hyper-parameters are the recipe (and its
    dataset version the default data), so the result says how stable that recipe is.
    """
    from ml.cv import kfold

    params = dict(job.params)
    if params.get("model_version"):
        version = _model_version(job)
        # The version's own architecture: a checkpoint imported without its recipe has no
        # "arch" in its params, and the recipe's default must not silently replace it.
        params = {**override({**version.params, "arch": version.arch}, params), **params}
        params.setdefault("dataset_version", version.dataset_version_id)
        job.params = params
    data = load_version(_dataset_version(params))
    options = from_params(KFoldOptions, params)
    k = options.k
    job.add_log(f"{k}-fold cross-validation on {len(data)} images")

    def progress(p) -> None:
        fold = min(int(p.fraction * k), k - 1) + 1
        job.set_progress(
            p.fraction,
            f"Fold {fold}/{k} · epoch {p.epoch}/{p.epochs} · step {p.step}/{p.steps}",
        )

    result = kfold(
        data, train_config(params), k=k, seed=int(params.get("seed", TrainConfig.seed)),
        group_column=options.group_column or None, progress=progress,
        should_stop=job.should_stop,
    )  # fmt: skip
    result["dataset_version"] = params["dataset_version"]
    if result["cancelled"]:
        raise WorkCancelled(result)
    return result


# --- audit, mitigate ------------------------------------------------------------------------


def store_audit(job, version, dataset_version, report: dict, subset: str) -> AuditReport:
    report = {**report, "evaluated_on": subset}
    return AuditReport.objects.create(
        model_version=version,
        dataset_version=dataset_version,
        attributes=list(report["attributes"]),
        source=dataset_version.attribute_source,
        result=report,
        job=job,
    )


def audit_job(job: Job) -> dict:
    """Per-group metrics of a model version on a dataset version with attributes."""
    from ml.fairness import audit_classifier

    version, dataset_version = _model_version(job), _dataset_version(job.params)
    data, measured_on = evaluation_data(version, dataset_version)
    subset = measured_on.name
    job.set_progress(0.1, f"Predicting {len(data)} images", force=True)
    options = from_params(AuditOptions, job.params)
    report = audit_classifier(
        load_classifier(version), data, options.attributes or None,
        source=dataset_version.attribute_source, min_group_size=options.min_group_size,
        threshold=options.threshold,
    )  # fmt: skip
    stored = store_audit(job, version, dataset_version, report, subset)
    job.add_log(f"Audit #{stored.pk} on {subset}: {len(report['findings'])} flagged group(s)")
    return {
        "audit": stored.pk,
        "model_version": version.pk,
        "dataset_version": dataset_version.pk,
        "findings": report["findings"],
    }


def mitigate_job(job: Job) -> dict:
    """Retrain a model version's recipe rebalanced or reweighted by one attribute (ml.fairness).

    The baseline is the chosen version itself; the new version trains on the same dataset
    version and split. Both are audited on the evaluation dataset version (its held-out split
    when it is the training version), and both audits are stored for the before/after page.
    """
    from ml.fairness import mitigate

    before = _model_version(job)
    params = job.params
    train_version = (
        DatasetVersion.objects.filter(pk=params.get("train_dataset_version")).first()
        or before.dataset_version
    )
    if train_version is None:
        raise JobParamsError(f"{before} names no training dataset version; choose one.")
    eval_version = _dataset_version(job.params)
    recipe = override({**(before.job.params if before.job else {}), **before.params}, params)
    train_set, val_set = _split(train_version, recipe)
    if eval_version == train_version:
        eval_set, subset = val_set, f"the validation split of {eval_version}"
    else:
        eval_set, subset = load_version(eval_version), f"all of {eval_version}"
    options = from_params(MitigateOptions, params)
    attribute, strategy = options.attribute, options.strategy
    job.add_log(f"Retraining {before} with {strategy} on {attribute}; auditing on {subset}")
    with storage.local_copy(before.checkpoint) as baseline:
        result = mitigate(
            train_set, val_set, eval_set, attribute, strategy, train_config(recipe),
            baseline_checkpoint=baseline, progress=training_progress(job),
            should_stop=job.should_stop, source=eval_version.attribute_source,
        )  # fmt: skip
    mitigated = result.pop("checkpoints")["mitigated"]
    if result["cancelled"]:
        raise WorkCancelled(result)
    mitigated["metrics"], calibration = score(mitigated, val_set)
    after = store_checkpoint(
        job,
        mitigated,
        train_version,
        f"{before.name} · {strategy} {attribute}",
        calibration,
        validation_measured_on(train_version, recipe, val_set),
    )
    audit_before = store_audit(job, before, eval_version, result["before"], subset)
    audit_after = store_audit(job, after, eval_version, result["after"], subset)
    return {
        **{k: v for k, v in result.items() if k not in ("before", "after")},
        "history": (job.result or {}).get("history", []),
        "model_version": after.pk,
        "dataset_version": eval_version.pk,
        "before": {"model_version": before.pk, "audit": audit_before.pk},
        "after": {"model_version": after.pk, "audit": audit_after.pk},
    }


# --- a worker's diagnostics ----------------------------------------------------------------


def diagnose_worker(job: Job) -> dict:
    """Report what a worker runs on and measure its matrix throughput.

    Lets an admin check that a `training` worker really sees its GPUs before starting a long
    run, and compare machines. Params: seconds (default 3), size (matrix side, default 512).
    """
    import torch

    from ml.device import resolve_device

    seconds = float(job.params.get("seconds", 3))
    size = int(job.params.get("size", 512))
    device = resolve_device(settings.EDUMOOD_DEVICE)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    flops = 0.0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        if job.should_stop():
            raise WorkCancelled({"gflops": flops / max(elapsed, 1e-9) / 1e9})
        for _ in range(10):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        flops += 10 * 2 * size**3
        elapsed = time.perf_counter() - start
        job.set_progress(elapsed / seconds, f"Measuring matrix throughput on {device}")
    return {
        "host": platform.node(),
        "device": str(device),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu_count": torch.cuda.device_count(),
        "cpu_threads": torch.get_num_threads(),
        "gflops": round(flops / elapsed / 1e9, 2),
        "seconds": round(elapsed, 2),
    }


def jobs_about(version: ModelVersion, kind: str):
    """Jobs of a kind that named this model version in their parameters."""
    return Job.objects.filter(kind=kind, params__model_version=version.pk).order_by(
        F("created_at").desc()
    )
