from django.db import models


class AuditAction(models.TextChoices):
    """What an audit log entry records (accounts.models.AuditEntry)."""

    CREATED = "created", "Account created"
    PASSWORD_RESET = "password_reset", "New password set"
    ACTIVE = "active", "Access changed"
    ROLE = "role", "Role changed"
    UNLOCK = "unlock", "Log-in limit cleared"
    RETENTION = "retention", "Photo retention changed"
    FACE_DETAIL = "face_detail", "Per-face detail changed"
    DETECTION = "detection", "Face detection changed"
    ACTIVITIES = "activities", "Lesson activities changed"
