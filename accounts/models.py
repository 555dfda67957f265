"""API tokens, failed log-in budgets and the audit log of account and setting changes."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from .choices import AuditAction


class ApiToken(models.Model):
    """One named API token of a user.

    Only the SHA-256 of the secret is stored, so a leaked database does not leak usable
    tokens; the first characters (`prefix`) are kept to tell tokens apart on the settings page.
    A revoked token keeps its row so the list still shows when it was used and revoked.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class LoginBudget(models.Model):
    """The log-in attempts left to one (account, address) pair, or to one address for all
    accounts (`account` empty), as a GCRA "theoretical arrival time" (accounts/login_limits.py).

    A row is a database row, not a cache entry, so that taking an attempt is one conditional
    UPDATE: atomic on SQLite and PostgreSQL alike, and shared by every web process.
    """

    account = models.CharField(max_length=150, blank=True)  # the username as typed, casefolded
    address = models.CharField(max_length=64)
    # Epoch seconds at which the budget is full again; at or before now, it is full.
    refilled_at = models.FloatField()
    # The last successful log-in of this pair: a known pair is not held back by its address's
    # volume limit, so strangers behind the same NAT cannot lock out its regular users.
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "address"], name="login_budget_pair")
        ]
        indexes = [models.Index(fields=["refilled_at"])]

    def __str__(self):
        return f"{self.account or '*'} from {self.address}"


class AppendOnly(Exception):  # noqa: N818  (a refusal, like PermissionDenied)
    """A row of an append-only log was to be changed or deleted."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly(f"{self.model._meta.verbose_name} rows cannot be changed.")

    def delete(self):
        raise AppendOnly(f"{self.model._meta.verbose_name} rows cannot be deleted.")


class AppendOnlyModel(models.Model):
    """A log whose rows are written once: saving an existing row, and deleting through the
    model or its default manager, raise AppendOnly.

    Django's own cascades (a deleted user or classroom nulls the links of its rows) go through
    the base manager, which stays a plain one: the rows outlive what they name.
    """

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly(f"{self._meta.verbose_name} rows cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly(f"{self._meta.verbose_name} rows cannot be deleted.")


class AuditEntry(AppendOnlyModel):
    """Who changed what, when, on which account or classroom, from what to what.

    Ids are plain numbers, not foreign keys, and names are copied: an entry reads the same
    after the person or classroom it names is renamed or deleted.
    """

    at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    actor_id = models.PositiveBigIntegerField(null=True)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=20, choices=AuditAction.choices)
    target_kind = models.CharField(max_length=50)  # the model: "user", "classroom"
    target_id = models.PositiveBigIntegerField()
    target = models.CharField(max_length=200)
    old_value = models.CharField(max_length=200, blank=True)
    new_value = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self):
        return f"{self.actor}: {self.get_action_display()} ({self.target_kind} {self.target})"
