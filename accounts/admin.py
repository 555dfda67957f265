from django.contrib import admin

from .forms import AdminLoginForm
from .models import ApiToken, AuditEntry

admin.site.login_form = AdminLoginForm


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("user", "key_hash", "prefix", "created_at", "last_used_at")

    def has_add_permission(self, request):
        # A token's secret is shown once at creation; users create them on /account/tokens/.
        return False


class ReadOnlyLogAdmin(admin.ModelAdmin):
    """An append-only log: listed and opened, never added, changed or deleted (the models
    refuse it too)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyLogAdmin):
    list_display = ("at", "actor", "action", "target_kind", "target", "old_value", "new_value")
    list_filter = ("action", "target_kind")
    search_fields = ("actor", "target")
