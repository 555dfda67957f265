from django.db import models


class JobKind(models.TextChoices):
    TRAIN = "train", "Train a model"
    EVALUATE = "evaluate", "Evaluate a model"
    KFOLD = "kfold", "k-fold cross-validation"
    AUDIT = "audit", "Bias audit"
    MITIGATE = "mitigate", "Bias mitigation"
    IMPORT_DATASET = "import_dataset", "Import a dataset"
    DIAGNOSE = "diagnose", "Worker diagnostics"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_JOB_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
