"""Issue 24, item 4: a staff admin cannot take over a superuser, every account and classroom
setting change is in an append-only audit log, and access records cannot be deleted."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import AppendOnly, AuditEntry
from analytics.models import AccessRecord
from analytics.services import record_access
from tests.analytics.conftest import make_classroom

pytestmark = pytest.mark.django_db
User = get_user_model()
PASSWORD = "a-Long-pass-123"


@pytest.fixture
def boss():
    return User.objects.create_user("boss", password=PASSWORD, is_staff=True)


@pytest.fixture
def root():
    return User.objects.create_superuser("root", password=PASSWORD)


def web_as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def trail() -> list[tuple]:
    """The audit log, oldest first, as (actor, action, target, old, new)."""
    return [
        (e.actor, e.action, e.target, e.old_value, e.new_value)
        for e in AuditEntry.objects.order_by("at", "id")
    ]


def test_a_staff_admin_cannot_reset_deactivate_or_demote_a_superuser(boss, root):
    web = web_as(boss)
    page = web.post(f"/people/{root.pk}/password/", follow=True).content.decode()
    assert "Only a superuser can set a new password for a superuser." in page
    assert "new-password-value" not in page
    page = web.post(f"/people/{root.pk}/active/", {"active": "0"}, follow=True).content.decode()
    assert "Only a superuser can deactivate or reactivate a superuser." in page
    api = api_as(boss)
    for body in ({"is_active": False}, {"is_staff": False}):
        refused = api.patch(f"/api/people/{root.pk}/", body, format="json")
        assert refused.status_code == 400 and "Only a superuser" in str(refused.json()), body
    # Both changes or neither: a refused role change undoes the deactivation with it.
    both = api.patch(f"/api/people/{root.pk}/", {"is_active": False, "is_staff": False}, "json")
    assert both.status_code == 400
    root.refresh_from_db()
    assert root.check_password(PASSWORD) and root.is_active and root.is_staff
    assert trail() == []


def test_a_superuser_may_and_every_account_change_is_audited(boss, root):
    ada = User.objects.create_user("ada", password=PASSWORD)
    web = web_as(root)
    web.post(f"/people/{boss.pk}/password/")
    web.post(f"/people/{ada.pk}/active/", {"active": "0"})
    web.post(f"/people/{ada.pk}/active/", {"active": "1"})
    web.post(f"/people/{ada.pk}/role/", {"role": "admin"})
    api_as(boss).patch(f"/api/people/{ada.pk}/", {"is_staff": False}, format="json")
    api_as(boss).post(f"/api/people/{ada.pk}/unlock/")
    api_as(boss).post("/api/people/", {"username": "eve", "is_staff": True}, format="json")
    web.post("/people/", {"username": "fay"})
    assert trail() == [
        ("root", "password_reset", "boss", "", ""),
        ("root", "active", "ada", "active", "deactivated"),
        ("root", "active", "ada", "deactivated", "active"),
        ("root", "role", "ada", "teacher", "admin"),
        ("boss", "role", "ada", "admin", "teacher"),
        ("boss", "unlock", "ada", "", ""),
        ("boss", "created", "eve", "", "admin"),
        ("root", "created", "fay", "", "teacher"),
    ]
    boss.refresh_from_db()  # its new password ended the sessions of the old one
    page = web_as(boss).get("/people/").content.decode()
    assert 'id="audit-log"' in page and "admin → teacher" in page


def test_admins_cannot_change_their_own_role(boss):
    page = web_as(boss).post(f"/people/{boss.pk}/role/", {"role": "teacher"}, follow=True)
    assert "cannot change your own role" in page.content.decode()
    boss.refresh_from_db()
    assert boss.is_staff


def test_classroom_setting_changes_are_audited_on_the_page_and_the_api(boss):
    teacher = User.objects.create_user("teacher", password=PASSWORD)
    classroom = make_classroom(teacher, name="Maths 7b")
    web = web_as(teacher)
    web.post(f"/classrooms/{classroom.pk}/retention/", {"retention": "delete"})
    web.post(f"/classrooms/{classroom.pk}/face-detail/", {"hide_face_detail": "on"})
    web.post(f"/classrooms/{classroom.pk}/detection/", {"detection_mode": "thorough"})
    web.post(f"/classrooms/{classroom.pk}/detection/", {"detection_mode": "thorough"})  # same
    web.post(f"/classrooms/{classroom.pk}/activities/", {"activities": "Lecture\nGroup work"})
    api_as(teacher).patch(
        f"/api/classrooms/{classroom.pk}/",
        {"name": "Maths 7c", "retention": "keep", "hide_face_detail": False,
         "activities": ["Lecture"]},
        format="json",
    )  # fmt: skip
    assert trail() == [
        ("teacher", "retention", "Maths 7b", "Keep a blurred copy",
         "Delete originals after analysis"),
        ("teacher", "face_detail", "Maths 7b", "off", "on"),
        ("teacher", "detection", "Maths 7b", "Fast",
         "Thorough (more small and turned faces, slower)"),
        ("teacher", "activities", "Maths 7b",
         "introduction, direct teaching, group work, practice, quiz, discussion",
         "Lecture, Group work"),
        ("teacher", "retention", "Maths 7c", "Delete originals after analysis", "Keep originals"),
        ("teacher", "face_detail", "Maths 7c", "on", "off"),
        ("teacher", "activities", "Maths 7c", "Lecture, Group work", "Lecture"),
    ]  # fmt: skip
    assert {e.target_kind for e in AuditEntry.objects.all()} == {"classroom"}
    assert "Maths 7c" in web_as(boss).get("/people/").content.decode()


def test_audit_entries_and_access_records_cannot_be_changed_or_deleted(boss, root):
    ada = User.objects.create_user("ada", password=PASSWORD)
    web_as(root).post(f"/people/{ada.pk}/password/")
    entry = AuditEntry.objects.get()
    record = record_access(ada, "viewed_session", make_classroom(ada))
    for row, rows in ((entry, AuditEntry.objects), (record, AccessRecord.objects)):
        with pytest.raises(AppendOnly):
            row.delete()
        with pytest.raises(AppendOnly):
            row.save()
        with pytest.raises(AppendOnly):
            rows.all().delete()
        with pytest.raises(AppendOnly):
            rows.update(actor="x") if row is entry else rows.update(username="x")
    # The Django admin lists them but offers no add, change or delete, even to a superuser.
    admin = web_as(root)
    for model, row in (("accounts/auditentry", entry), ("analytics/accessrecord", record)):
        assert admin.get(f"/django-admin/{model}/").status_code == 200
        assert admin.get(f"/django-admin/{model}/add/").status_code == 403
        assert (
            admin.post(f"/django-admin/{model}/{row.pk}/delete/", {"post": "yes"}).status_code
            == 403
        )
        bulk = admin.post(
            f"/django-admin/{model}/",
            {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
        )
        assert bulk.status_code in (200, 302)
    assert AuditEntry.objects.count() == 1 and AccessRecord.objects.count() == 1
    # Deleting what a record names keeps the record, its names copied.
    ada.classrooms.all().delete()
    ada.delete()
    record = AccessRecord.objects.get()
    assert record.user is None and record.classroom is None and record.username == "ada"
