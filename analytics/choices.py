from django.db import models

from ml.options import DETECTION_MODES


class Retention(models.TextChoices):
    """What happens to an original photo once its faces are analysed."""

    BLUR = "blur", "Keep a blurred copy"
    DELETE = "delete", "Delete originals after analysis"
    KEEP = "keep", "Keep originals"


# The face detector's settings a classroom chooses from: ml.options.DETECTION_MODES.
DetectionMode = models.TextChoices(
    "DetectionMode", [(mode.upper(), (mode, label)) for mode, label in DETECTION_MODES.items()]
)


# What each retention setting keeps, said where a teacher chooses one.
RETENTION_KEEPS = {
    Retention.BLUR: "Keeps a coarse copy of the photo, so results are drawn on the picture: the "
    "whole photo in large soft blocks (no face or name label stays recognisable, also those the "
    "detector missed) and every detected face covered.",
    Retention.DELETE: "Keeps only the results (face boxes, states, probabilities): the photo "
    "is deleted once analysed, so results are drawn on a blank frame and cannot be re-analysed.",
    Retention.KEEP: "Keeps the photo as uploaded, faces recognisable, so it can be re-analysed "
    "with a newer model. Choose this only if your school's consent covers storing it.",
}


class ConsentMethod(models.TextChoices):
    WRITTEN = "written", "Signed written form"
    ELECTRONIC = "electronic", "Electronic form or e-mail"
    SCHOOL_POLICY = "school_policy", "School policy agreement with guardians"
    OTHER = "other", "Other (described in the notes)"


class SessionKind(models.TextChoices):
    IN_PERSON = "in_person", "In person"
    ONLINE = "online", "Online meeting"


class PhotoStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    ANALYSING = "analysing", "Analysing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImageState(models.TextChoices):
    ORIGINAL = "original", "Original kept"
    BLURRED = "blurred", "Faces blurred"
    DELETED = "deleted", "Deleted after analysis"


class AccessAction(models.TextChoices):
    VIEWED_SESSION = "viewed_session", "Viewed a session's results"
    VIEWED_PHOTO = "viewed_photo", "Viewed a stored photo"
    VIEWED_DASHBOARD = "viewed_dashboard", "Viewed the classroom dashboard"
    PRINTED_REPORT = "printed_report", "Opened the printable report"
    PRIVACY_RECEIPT = "privacy_receipt", "Opened the privacy receipt"
    EXPORTED_CSV = "exported_csv", "Exported CSV"


TERMINAL_PHOTO_STATUSES = frozenset({PhotoStatus.DONE, PhotoStatus.FAILED})
