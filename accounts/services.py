"""Token operations (issue, look up by hash, mark used, revoke) and people's accounts."""

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db.models import Q
from django.utils import timezone

from .models import ApiToken

KEY_PREFIX = "edm_"
PREFIX_LENGTH = 10  # "edm_" + 6 random characters: enough to tell a user's tokens apart
# last_used_at is informative, not an audit log: one write a minute per token keeps every
# authenticated request from also being a database write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_key(key: str) -> str:
    """The stored form of a token secret (hex SHA-256).

    A plain hash is enough (no salt, no slow KDF): the secret is 32 random bytes, not a
    password a person chose, so it cannot be guessed from its hash.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def issue_token(user, name: str) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the secret, which is never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip() or "API token",
        key_hash=hash_key(key),
        prefix=key[:PREFIX_LENGTH],
    )
    return token, key


def active_token_for_key(key: str) -> ApiToken | None:
    """The unrevoked token whose secret is `key`, with its user, or None."""
    return (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_key(key), revoked_at__isnull=True)
        .first()
    )


def mark_used(token: ApiToken) -> None:
    """Record that the token was used now, writing at most once per LAST_USED_RESOLUTION."""
    now = timezone.now()
    if token.last_used_at and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    token.last_used_at = now


def revoke_token(token: ApiToken) -> None:
    """Revoke a token at once; requests with it are rejected from now on."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


# --- people ---------------------------------------------------------------------------------


class PeopleError(Exception):
    """An account change that is not allowed; the message says why."""


def generate_password() -> str:
    """A random password to hand to a new teacher: 16 URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


def create_person(username: str, *, email: str = "", is_staff: bool = False, password: str = ""):
    """A new account (a teacher, or an admin when `is_staff`); returns (user, password).

    Without a chosen password one is generated. Either way it is returned once for the admin to
    pass on, and only its hash is stored. A chosen one must pass the site's password rules.
    """
    user = get_user_model()(username=username, email=email, is_staff=is_staff)
    if password:
        validate_password(password, user)
    else:
        password = generate_password()
    user.set_password(password)
    user.save()
    return user, password


def set_active(user, active: bool, *, by) -> None:
    """Deactivate or reactivate an account.

    A deactivated person can no longer log in, their open browser sessions end at their next
    request and their API tokens are refused (Django and the token check both test is_active);
    their classrooms and results stay. An admin cannot deactivate themself (nobody might be left
    to undo it), nor may a non-superuser deactivate a superuser.
    """
    if not active and user.pk == by.pk:
        raise PeopleError("You cannot deactivate your own account.")
    if not active and user.is_superuser and not by.is_superuser:
        raise PeopleError("Only a superuser can deactivate a superuser.")
    if user.is_active != active:
        user.is_active = active
        user.save(update_fields=["is_active"])


def reset_password(user) -> str:
    """Give an account a new generated password, returned once (a teacher who forgot theirs).

    Browser sessions logged in with the old password end (Django checks a hash of it); API
    tokens are separate credentials and stay valid until revoked.
    """
    password = generate_password()
    user.set_password(password)
    user.save(update_fields=["password"])
    return password
