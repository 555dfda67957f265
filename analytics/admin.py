from django.contrib import admin

from accounts.admin import ReadOnlyLogAdmin

from .models import AccessRecord, Classroom, Consent, FaceResult, Photo, Session


class ConsentInline(admin.TabularInline):
    model = Consent
    extra = 0
    readonly_fields = ("recorded_by", "recorded_at")


@admin.register(Classroom)
class ClassroomAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "subject", "owner", "retention", "hide_face_detail", "created_at")
    list_filter = ("retention", "hide_face_detail")
    search_fields = ("name", "subject", "owner__username")
    inlines = [ConsentInline]


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "classroom", "kind", "started_at")
    list_filter = ("kind",)
    exclude = ("note",)  # the teacher's private note: staff see sessions, not what they wrote


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    # No image preview: staff can act on a stuck photo without seeing students' faces.
    list_display = ("id", "session", "status", "image_state", "attempts", "uploaded_at")
    list_filter = ("status", "image_state")
    exclude = ("image",)
    readonly_fields = ("heartbeat_at", "analysed_at", "model_version")


@admin.register(FaceResult)
class FaceResultAdmin(admin.ModelAdmin):
    list_display = ("id", "photo", "state", "label", "score", "model_version")
    list_filter = ("state",)


@admin.register(AccessRecord)
class AccessRecordAdmin(ReadOnlyLogAdmin):
    """An access log that can be edited or deleted is no log."""

    list_display = ("at", "username", "action", "classroom_name", "session", "detail")
    list_filter = ("action",)
    search_fields = ("username", "classroom_name", "detail")
