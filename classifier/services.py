"""Domain operations of the model lifecycle. Views, the API and the job handlers call these;
the job table and starting jobs are in jobs.py."""

import hashlib
import json
import statistics
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from edumood_site import storage
from ml.options import SplitOptions, from_params
from ml.scorecard import MeasuredOn, build_scorecard, shipped_scorecard

from .choices import JobKind, JobStatus
from .models import DatasetVersion, Job, ModelVersion


class JobParamsError(Exception):
    """Parameters that name something missing or unusable; the message is shown as the error."""

    plain = True  # a failed job shows the message alone (Job.failure_reason)


# Finished training runs per architecture whose speed the estimate takes the median of.
SPEED_SAMPLES = 10


def training_speeds() -> dict[str, float]:
    """Training images per second, per architecture, measured on this installation's finished
    training jobs: (training images x epochs run) / wall time from start to finish, validation
    and checkpoints included; the median of the latest SPEED_SAMPLES of each architecture."""
    from ml.recipe import DEFAULT_ARCH

    jobs = list(
        Job.objects.filter(
            kind=JobKind.TRAIN, status=JobStatus.SUCCEEDED,
            started_at__isnull=False, finished_at__isnull=False,
        ).order_by("-finished_at")[:200]
    )  # fmt: skip
    sizes = dict(
        DatasetVersion.objects.filter(
            pk__in={job.params.get("dataset_version") for job in jobs}
        ).values_list("pk", "size")
    )
    speeds: dict[str, list[float]] = {}
    for job in jobs:
        seconds = (job.finished_at - job.started_at).total_seconds()
        epochs = len((job.result or {}).get("history") or [])
        size = sizes.get(job.params.get("dataset_version"))
        if seconds <= 0 or not epochs or not size:
            continue
        train_images = size * (1 - from_params(SplitOptions, job.params).val_fraction)
        arch_speeds = speeds.setdefault(job.params.get("arch") or DEFAULT_ARCH, [])
        if len(arch_speeds) < SPEED_SAMPLES:
            arch_speeds.append(train_images * epochs / seconds)
    return {arch: round(statistics.median(values), 1) for arch, values in speeds.items()}


# --- model versions -------------------------------------------------------------------------

# One loaded model per process, keyed by row id and checkpoint hash (a reused id after a
# database reset must never serve another model's weights). One slot: a long-running worker
# that sees many promotions must not keep every model it ever loaded in memory.
_CLASSIFIERS: dict[tuple[int, str], object] = {}


def register_model_version(
    checkpoint_path,
    *,
    name: str,
    source: str = ModelVersion.Source.TRAINED,
    job=None,
    user=None,
    calibration: dict | None = None,
    dataset_version=None,
    measured_on: MeasuredOn | None = None,
) -> ModelVersion:
    """Store a checkpoint file as a new model version (or return the one with the same bytes).

    `calibration` (see `measure_calibration`) is stored with it, or added to an existing
    version that has none. Its scorecard is built from the checkpoint's metrics on
    `measured_on` (default: the validation split of `dataset_version`, its training data);
    the shipped model's from its stored reference evaluation.
    """
    from ml.checkpoint import load_checkpoint
    from ml.labels import default_state_mapping

    path = Path(checkpoint_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    existing = ModelVersion.objects.filter(checkpoint_sha256=digest).first()
    if existing:
        if calibration and not existing.calibration:
            set_calibration(existing, calibration)
        return existing
    checkpoint = load_checkpoint(path)
    version = ModelVersion(
        name=name,
        arch=checkpoint["arch"],
        classes=list(checkpoint["classes"]),
        state_mapping=checkpoint.get("state_mapping")
        or default_state_mapping(checkpoint["classes"]),
        input_size=checkpoint["input_size"],
        normalisation=checkpoint["normalisation"],
        checkpoint_sha256=digest,
        source=source,
        params=checkpoint.get("config") or {},
        metrics=checkpoint.get("metrics") or {},
        history=checkpoint.get("history") or [],
        device=str(checkpoint.get("device", "")),
        calibration=calibration,
        dataset_version=dataset_version,
        job=job,
        created_by=user,
    )
    if source == ModelVersion.Source.SHIPPED:
        card = shipped_scorecard(version.classes, version.state_mapping, calibration)
    else:
        card = version.training_scorecard(measured_on)
    version.scorecard = card.to_json()
    with path.open("rb") as handle:
        version.checkpoint.save(f"{digest[:16]}.pt", File(handle), save=False)
    version.save()
    return version


def measure_calibration(classifier, data) -> dict:
    """The calibration (JSON) of an ml Classifier on labelled validation faces (an ImageSet).

    Runs the model on every face: call it where torch lives (a worker or a command).
    """
    from ml.quantify import measure_calibration as measure

    return measure(classifier, data).to_json()


def set_calibration(version: ModelVersion, calibration: dict) -> None:
    """Store a version's calibration (and its size on the scorecard). Sessions already analysed
    keep their numbers until they are analysed again (their quantification is stored, not
    recomputed on reading)."""
    version.calibration = calibration
    faces = sum(map(sum, calibration["confusion"]))
    version.scorecard = {**version.card.to_json(), "calibration_faces": faces}
    version.__dict__.pop("card", None)
    ModelVersion.objects.filter(pk=version.pk).update(
        calibration=calibration, scorecard=version.scorecard
    )


def record_measurement(
    version: ModelVersion, metrics: dict, measured_on: MeasuredOn, source: str
) -> bool:
    """Make a new measurement (an evaluation's metrics) the version's scorecard; True if it did.

    The latest measurement replaces the scorecard, except that one not on a reference set never
    replaces one that is: a reference number is worth more than a newer look at own data.
    """
    card = build_scorecard(
        metrics, version.classes, version.state_mapping, measured_on=measured_on,
        source=source, calibration=version.calibration,
    )  # fmt: skip
    current = version.card.measured_on
    if current is not None and current.reference and not measured_on.reference:
        return False
    version.scorecard = card.to_json()
    version.__dict__.pop("card", None)
    ModelVersion.objects.filter(pk=version.pk).update(scorecard=version.scorecard)
    return True


def calibrate_model_version(version: ModelVersion, data_dir) -> dict:
    """Measure and store a version's calibration on a folder of labelled faces (class or state
    folders, as for evaluation)."""
    from ml.data import load_images

    data = load_images(data_dir, size=version.input_size)
    calibration = measure_calibration(load_classifier(version), data)
    set_calibration(version, calibration)
    return calibration


class PromotionNeedsConfirmation(Exception):  # noqa: N818  (a refusal, answered with 409)
    """A broken version (one class, near chance) is promoted only when the admin confirms."""

    def __init__(self, version: ModelVersion):
        self.flags = version.card.broken
        super().__init__(
            f"{version} is flagged: "
            + " ".join(flag.message for flag in self.flags)
            + " Confirm to promote it anyway."
        )


@transaction.atomic
def promote(version: ModelVersion, *, user=None, confirmed: bool = False) -> ModelVersion:
    """Make this version the one inference uses from the next photo on.

    A broken version (its scorecard's one-class or near-chance flags) needs `confirmed`: every
    classroom photo would get its answers, and a one-class model gives every face the same
    state. Versions only not measured on a reference set are promoted without it; pages and
    teachers' banners say what they were measured on.
    """
    if version.card.broken and not confirmed:
        raise PromotionNeedsConfirmation(version)
    ModelVersion.objects.select_for_update().filter(is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    version.is_active = True
    version.promoted_at = timezone.now()
    version.promoted_by = user
    version.save(update_fields=["is_active", "promoted_at", "promoted_by"])
    return version


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


# (scorecard field, label) compared between versions; higher is better.
SCORECARD_ROWS = (
    ("accuracy", "Accuracy"),
    ("macro_f1", "Macro-F1"),
    ("state_accuracy", "Accuracy, 4 states"),
    ("state_macro_f1", "Macro-F1, 4 states"),
)


def _audit_findings(version: ModelVersion) -> tuple[int | None, object]:
    """Flagged groups of the version's latest bias audit (None when never audited), and it."""
    audit = version.audits.select_related("dataset_version__dataset").first()
    return (len(audit.result.get("findings", [])) if audit else None), audit


def comparison_note(candidate: ModelVersion, active: ModelVersion) -> str:
    """Why two versions' scorecards cannot rank them ("" when they can)."""
    mine, theirs = candidate.card, active.card
    if mine.comparable_with(theirs):
        return ""
    if theirs.broken and not mine.broken:
        return (
            f"The active model is flagged ({'; '.join(f.label.lower() for f in theirs.broken)})"
            ": its numbers are no standard to be worse than."
        )
    if mine.flags or theirs.flags:
        return (
            "Not comparable: a flagged number (not measured on a reference set, or a broken "
            "model) ranks nothing. Evaluate both on one reference dataset version."
        )
    return (
        "Not comparable: measured on different data "
        f"({mine.measured_on.name if mine.measured_on else 'not recorded'} and "
        f"{theirs.measured_on.name if theirs.measured_on else 'not recorded'}). "
        "Evaluate both on one dataset version."
    )


def promotion_review(version: ModelVersion) -> dict:
    """The promote page's comparison of a candidate with the active version, from scorecards.

    Rows of (label, candidate value, active value, whether the candidate is worse), the labels
    where it is worse, the candidate's flags, and `note` when the two cannot be ranked. A row
    counts as worse only when both numbers are comparable (ml.scorecard: same reference set,
    neither flagged): a flagged active model's numbers make nothing "worse".
    """
    active = active_model_version()
    if active is not None and active.pk == version.pk:
        active = None
    note = comparison_note(version, active) if active is not None else ""
    rows = []
    for key, label in SCORECARD_ROWS:
        mine = getattr(version.card, key)
        theirs = getattr(active.card, key) if active is not None else None
        worse = (
            not note and mine is not None and theirs is not None
            and round(mine, 3) < round(theirs, 3)
        )  # fmt: skip
        rows.append({"label": label, "candidate": mine, "active": theirs, "worse": worse})
    findings, audit = _audit_findings(version)
    active_findings, active_audit = _audit_findings(active) if active else (None, None)
    rows.append(
        {
            "label": "Flagged groups in the latest bias audit",
            "candidate": findings,
            "active": active_findings,
            "worse": findings is not None
            and active_findings is not None
            and findings > active_findings,
            "audits": (audit, active_audit),
        }
    )
    return {
        "active": active,
        "rows": rows,
        "worse": [row["label"] for row in rows if row["worse"]],
        "flags": version.card.flags,
        "broken": version.card.broken,
        "note": note,
    }


def load_classifier(version: ModelVersion):
    """The ml Classifier of a version, loaded once per process and kept for later photos."""
    from ml.predict import Classifier

    key = (version.pk, version.checkpoint_sha256)
    classifier = _CLASSIFIERS.get(key)
    if classifier is None:
        with storage.local_copy(version.checkpoint) as path:
            classifier = Classifier.load(path, device=settings.EDUMOOD_DEVICE)
        _CLASSIFIERS.clear()
        _CLASSIFIERS[key] = classifier
    return classifier


def register_default_model() -> str:
    """Register the shipped default model, with its shipped calibration, and make it active
    when no version is active."""
    from ml.predict import DEFAULT_CALIBRATION, DEFAULT_WEIGHTS

    if not Path(DEFAULT_WEIGHTS).is_file():
        return f"No shipped model at {DEFAULT_WEIGHTS}; photo analysis waits for a trained one."
    calibration = (
        json.loads(DEFAULT_CALIBRATION.read_text()) if DEFAULT_CALIBRATION.is_file() else None
    )
    version = register_model_version(
        DEFAULT_WEIGHTS,
        name="EduMood default (FER2013)",
        source=ModelVersion.Source.SHIPPED,
        calibration=calibration,
    )
    if active_model_version() is None:
        # The shipped model is chosen by its maintainers; its model card documents its scores.
        promote(version, confirmed=True)
        return f"Registered and activated the default model: {version}"
    return ""
