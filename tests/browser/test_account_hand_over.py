"""Issue 23 item 6 in Chromium at 1366 and 390 px: an admin copies a one-time password, is asked
before "Deactivate" and "New password", and a deactivated teacher is told whom to ask."""

import re

import pytest
from django.contrib.auth import get_user_model

from tests.browser.test_people_and_registry import (  # noqa: F401 (fixtures)
    PASSWORD,
    log_in,
    log_out,
    shoot,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_copies_the_password_confirms_risky_buttons_and_a_deactivated_teacher_is_told(
    live_server,
    page,  # noqa: F811 (the fixture imported above)
    out_dir,
):
    from playwright.sync_api import expect

    User = get_user_model()
    User.objects.create_user("boss", password=PASSWORD, is_staff=True, email="boss@school.example")
    base = live_server.url
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)

    page.goto(f"{base}/login/")
    expect(page.locator("#get-account")).to_contain_text("an admin of this EduMood creates")
    shoot(page, out_dir, "1-login-how-to-get-an-account")

    log_in(page, base, "boss", PASSWORD)
    page.goto(f"{base}/people/")
    page.fill("#person-form #id_username", "ada")
    page.click("#person-form button[type=submit]")
    password = page.input_value("#new-password-value")
    assert re.fullmatch(r"[2-9a-hjkmnp-z]{5}(-[2-9a-hjkmnp-z]{5}){3}", password), password
    page.click("#copy-password")
    expect(page.locator("[data-copy-status]")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == password
    shoot(page, out_dir, "2-people-password-copied")

    ada = page.locator("[data-person='ada']")
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    ada.locator("button:has-text('Deactivate')").click()
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    ada.locator("button:has-text('New password')").click()
    assert questions[0].startswith("Deactivate ada? They can no longer log in")
    assert questions[1].startswith("Give ada a new password?")
    assert User.objects.get(username="ada").is_active  # both refused: nothing happened
    assert User.objects.get(username="ada").check_password(password)

    page.once("dialog", lambda dialog: dialog.accept())
    ada.locator("button:has-text('Deactivate')").click()
    expect(page.locator(".messages")).to_contain_text("“ada” is deactivated")
    shoot(page, out_dir, "3-people-deactivated")
    log_out(page)

    log_in(page, base, "ada", password)
    error = page.locator("main .error")
    expect(error).to_contain_text("Your account is deactivated")
    expect(error).to_contain_text("boss (boss@school.example)")
    shoot(page, out_dir, "4-login-deactivated")
