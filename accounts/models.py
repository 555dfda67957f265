"""API tokens: named, revocable credentials for integrations, stored only as a hash."""

from django.conf import settings
from django.db import models


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
