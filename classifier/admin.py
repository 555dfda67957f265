from django.contrib import admin

from .models import AuditReport, Dataset, DatasetVersion, Job, ModelVersion


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "progress", "requested_by", "created_at", "finished_at")
    list_filter = ("kind", "status")
    readonly_fields = [f.name for f in Job._meta.fields]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "arch", "source", "is_active", "created_at")
    list_filter = ("source", "is_active", "arch")
    readonly_fields = ("checkpoint_sha256", "created_at", "promoted_at", "promoted_by")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Dataset versions and audits are immutable records: viewable, deletable, never edited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_by", "created_at")
    search_fields = ("name",)


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    list_display = ("id", "dataset", "number", "size", "attribute_source", "created_at")
    list_filter = ("attribute_source",)


@admin.register(AuditReport)
class AuditReportAdmin(ReadOnlyAdmin):
    list_display = ("id", "model_version", "dataset_version", "source", "created_at")
    list_filter = ("source",)
