"""The People page and /api/people/: admins create, deactivate and reactivate accounts."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.services import issue_token

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def boss():
    return User.objects.create_user("boss", password="a-Long-pass-123", is_staff=True)


@pytest.fixture
def admin_web(client, boss):
    client.force_login(boss)
    return client


def _logs_in(username: str, password: str) -> bool:
    return Client().login(username=username, password=password)


def test_an_admin_creates_a_teacher_whose_generated_password_is_shown_once(admin_web):
    page = admin_web.get(reverse("accounts:people"))
    assert page.status_code == 200 and b'id="person-form"' in page.content
    created = admin_web.post(reverse("accounts:people"), {"username": "ada"}, follow=True)
    teacher = User.objects.get(username="ada")
    assert not teacher.is_staff and teacher.is_active
    shown = created.context["new_password"]
    assert shown["username"] == "ada" and len(shown["password"]) >= 16
    assert shown["password"] in created.content.decode()
    assert _logs_in("ada", shown["password"])
    assert teacher.password != shown["password"]  # only the hash is stored
    again = admin_web.get(reverse("accounts:people")).content.decode()
    assert shown["password"] not in again and "ada" in again  # a reload does not show it


def test_a_chosen_password_must_pass_the_rules_and_usernames_are_unique(admin_web):
    url = reverse("accounts:people")
    weak = admin_web.post(url, {"username": "ada", "password": "password1"})
    assert weak.status_code == 400 and not User.objects.filter(username="ada").exists()
    assert b"This password is too common" in weak.content
    chosen = admin_web.post(
        url, {"username": "ada", "password": "Kettle-Mango-42", "is_staff": "on"}, follow=True
    )
    assert "Kettle-Mango-42" in chosen.content.decode()  # shown once, like a generated one
    assert User.objects.get(username="ada").is_staff and _logs_in("ada", "Kettle-Mango-42")
    taken = admin_web.post(url, {"username": "ADA"})
    assert taken.status_code == 400 and b"already has this username" in taken.content


def test_deactivating_ends_log_in_sessions_and_tokens_and_reactivating_restores_them(
    admin_web, boss
):
    ada = User.objects.create_user("ada", password="Kettle-Mango-42")
    browser = Client()
    browser.force_login(ada)
    assert browser.get(reverse("analytics:classrooms")).status_code == 200
    _, key = issue_token(ada, "script")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/classrooms/").status_code == 200

    url = reverse("accounts:person-active", args=[ada.pk])
    page = admin_web.post(url, {"active": "0"}, follow=True)
    assert b"is deactivated" in page.content
    assert (
        b'data-person="ada" class="muted"' in page.content and b"deactivated</span>" in page.content
    )
    assert browser.get(reverse("analytics:classrooms")).status_code == 302  # logged out
    assert api.get("/api/classrooms/").status_code == 401
    assert not _logs_in("ada", "Kettle-Mango-42")

    admin_web.post(url, {"active": "1"})
    assert _logs_in("ada", "Kettle-Mango-42")
    assert api.get("/api/classrooms/").status_code == 200


def test_an_admin_cannot_deactivate_themself(admin_web, boss):
    page = admin_web.post(
        reverse("accounts:person-active", args=[boss.pk]), {"active": "0"}, follow=True
    )
    assert b"cannot deactivate your own account" in page.content
    boss.refresh_from_db()
    assert boss.is_active


def test_a_new_password_replaces_the_old_one_and_is_shown_once(admin_web):
    ada = User.objects.create_user("ada", password="Kettle-Mango-42")
    page = admin_web.post(reverse("accounts:person-password", args=[ada.pk]), follow=True)
    password = page.context["new_password"]["password"]
    assert _logs_in("ada", password) and not _logs_in("ada", "Kettle-Mango-42")


def test_teachers_get_403_and_anonymous_users_the_login_page(client, boss):
    ada = User.objects.create_user("ada", password="Kettle-Mango-42")
    urls = [
        reverse("accounts:person-active", args=[boss.pk]),
        reverse("accounts:person-password", args=[boss.pk]),
    ]
    assert client.get(reverse("accounts:people")).status_code == 302
    client.force_login(ada)
    assert client.get(reverse("accounts:people")).status_code == 403
    assert client.post(reverse("accounts:people"), {"username": "eve"}).status_code == 403
    for url in urls:
        assert client.post(url, {"active": "0"}).status_code == 403
    boss.refresh_from_db()
    assert boss.is_active and boss.check_password("a-Long-pass-123")
    assert not User.objects.filter(username="eve").exists()
    assert b"People" not in client.get(reverse("home")).content  # not in a teacher's nav


def test_the_people_api_creates_with_a_password_once_and_deactivates(boss):
    api = APIClient()
    api.force_authenticate(boss)
    created = api.post("/api/people/", {"username": "ada"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["is_staff"] is False and body["is_active"] is True
    assert _logs_in("ada", body["password"])
    listed = api.get(f"/api/people/{body['id']}/").json()
    assert "password" not in listed
    off = api.patch(f"/api/people/{body['id']}/", {"is_active": False}, format="json")
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert not _logs_in("ada", body["password"])
    # Nothing but is_active and is_staff can be changed, and an admin cannot lock themself out.
    api.patch(f"/api/people/{body['id']}/", {"username": "eve", "is_staff": True}, format="json")
    assert User.objects.filter(username="ada", is_staff=True).exists()
    myself = api.patch(f"/api/people/{boss.pk}/", {"is_active": False}, format="json")
    assert myself.status_code == 400 and "own account" in myself.json()["is_active"][0]
    weak = api.post("/api/people/", {"username": "bob", "password": "123"}, format="json")
    assert weak.status_code == 400 and "password" in weak.json()


def test_a_teacher_replaces_the_handed_over_password_with_their_own(client):
    ada = User.objects.create_user("ada", password="Handed-Over-77")
    client.force_login(ada)
    url = reverse("accounts:password")
    assert b'href="/account/password/"' in client.get(reverse("home")).content  # in the nav
    wrong = client.post(url, {"old_password": "nope", "new_password1": "x", "new_password2": "x"})
    assert wrong.status_code == 200 and b"incorrectly" in wrong.content
    done = client.post(
        url,
        {"old_password": "Handed-Over-77", "new_password1": "Quiet-Harbour-31",
         "new_password2": "Quiet-Harbour-31"},
        follow=True,
    )  # fmt: skip
    assert b"Your password is changed." in done.content
    assert _logs_in("ada", "Quiet-Harbour-31") and not _logs_in("ada", "Handed-Over-77")


def test_generated_passwords_have_no_look_alike_characters():
    from accounts.services import generate_password

    passwords = {generate_password() for _ in range(200)}
    assert len(passwords) == 200
    for password in passwords:
        groups = password.split("-")
        assert [len(group) for group in groups] == [5, 5, 5, 5]
        assert not set(password) & set("0Oo1lIi"), password
        assert password == password.lower()


def test_the_one_time_password_has_a_copy_button_and_risky_buttons_ask_first(admin_web):
    ada = User.objects.create_user("ada", password="Kettle-Mango-42")
    User.objects.create_user("bob", password="Kettle-Mango-42", is_active=False)
    page = admin_web.post(reverse("accounts:person-password", args=[ada.pk]), follow=True)
    html = page.content.decode()
    assert 'data-copy="new-password-value"' in html and ">Copy</button>" in html
    assert "Deactivate ada? They can no longer log in" in html
    assert "Give ada a new password? Their current password stops working" in html
    assert "Deactivate bob?" not in html  # reactivating asks nothing: it takes nothing away
    assert "Give bob a new password?" in html


def test_a_deactivated_teacher_is_told_so_and_whom_to_ask(client, boss):
    boss.email = "boss@school.example"
    boss.save()
    User.objects.create_user(
        "zed.former", password="a-Long-pass-123", is_staff=True, is_active=False
    )
    User.objects.create_user("ada", password="Kettle-Mango-42", is_active=False)
    login = reverse("login")
    right = client.post(login, {"username": "ada", "password": "Kettle-Mango-42"})
    text = right.content.decode()
    assert right.status_code == 200 and "_auth_user_id" not in client.session
    assert "Your account is deactivated" in text
    assert "boss (boss@school.example)" in text and "zed.former" not in text  # active admins only
    wrong = client.post(login, {"username": "ada", "password": "not-her-password"})
    assert "deactivated" not in wrong.content.decode()  # a guesser learns nothing
    assert "Please enter a correct username and password" in wrong.content.decode()


def test_the_login_page_says_how_to_get_an_account(client):
    page = client.get(reverse("login"))
    assert b'id="get-account"' in page.content
    assert b"an admin of this\n  EduMood creates your account" in page.content
