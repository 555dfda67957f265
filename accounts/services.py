"""Token operations (issue, look up by hash, mark used, revoke), people's accounts and the audit
log of changes to them."""

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .choices import AuditAction
from .login_limits import clear_failures
from .models import ApiToken, AuditEntry

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


# --- audit log -----------------------------------------------------------------------------


def audit(by, action: AuditAction, target, *, old: str = "", new: str = "") -> AuditEntry:
    """Write one entry to the append-only audit log: `by` did `action` to `target` (a user or a
    classroom), changing it from `old` to `new`."""
    return AuditEntry.objects.create(
        actor_id=by.pk,
        actor=by.get_username(),
        action=action,
        target_kind=target._meta.model_name,
        target_id=target.pk,
        target=str(target)[:200],
        old_value=str(old)[:200],
        new_value=str(new)[:200],
    )


# --- people ---------------------------------------------------------------------------------
# Each change below is one transaction with its audit entry: no change without its trace.


class PeopleError(Exception):
    """An account change that is not allowed; the message says why."""


# Handed-over passwords are read aloud, copied from a screen or typed on a phone: lower case
# and digits only, without the look-alikes 0/o, 1/l/i; 4 groups of 5 from 31 symbols = 99 bits.
PASSWORD_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
PASSWORD_GROUPS, PASSWORD_GROUP_LENGTH = 4, 5


def generate_password() -> str:
    """A random password to hand to a new teacher, e.g. "k7rm2-p3xaq-9hdwe-tn4cz"."""
    return "-".join(
        "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_GROUP_LENGTH))
        for _ in range(PASSWORD_GROUPS)
    )


# The deactivated log-in message names at most this many admins to ask.
ADMINS_NAMED = 3


def deactivated_message(username: str, password: str) -> str | None:
    """What to tell someone whose log-in failed, when the username and password are right but
    the account is deactivated: that, and whom to ask (the active admins, with their e-mail).
    None otherwise.

    Only said to someone who knows the password, after the attempt was counted against the
    log-in limits, so it tells a guesser nothing new.
    """
    User = get_user_model()
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}, is_active=False).first()
    if user is None or not user.check_password(password):
        return None
    admins = User.objects.filter(is_active=True, is_staff=True).order_by("username")
    names = [
        f"{admin.username} ({admin.email})" if admin.email else admin.username
        for admin in admins[:ADMINS_NAMED]
    ]
    ask = ", ".join(names) or "the person who runs EduMood at your school"
    return (
        "Your account is deactivated, so you cannot log in. Ask an admin of this EduMood to "
        f"reactivate it: {ask}."
    )


@transaction.atomic
def create_person(
    username: str, *, by, email: str = "", is_staff: bool = False, password: str = ""
):
    """A new account (a teacher, or an admin when `is_staff`), created by the admin `by`;
    returns (user, password).

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
    audit(by, AuditAction.CREATED, user, new=_role(is_staff))
    return user, password


@transaction.atomic
def set_active(user, active: bool, *, by) -> None:
    """Deactivate or reactivate an account.

    A deactivated person can no longer log in, their open browser sessions end at their next
    request and their API tokens are refused (Django and the token check both test is_active);
    their classrooms and results stay. An admin cannot deactivate themself (nobody might be left
    to undo it), nor may a non-superuser deactivate a superuser.
    """
    if not active and user.pk == by.pk:
        raise PeopleError("You cannot deactivate your own account.")
    _superuser_only(user, by, "deactivate or reactivate")
    if user.is_active != active:
        user.is_active = active
        user.save(update_fields=["is_active"])
        audit(by, AuditAction.ACTIVE, user, old=_access(not active), new=_access(active))


def _access(active: bool) -> str:
    return "active" if active else "deactivated"


def _role(is_staff: bool) -> str:
    return "admin" if is_staff else "teacher"


def _superuser_only(user, by, what: str) -> None:
    """A staff admin must not take over a superuser's account (and with it the Django admin)."""
    if user.is_superuser and not by.is_superuser:
        raise PeopleError(f"Only a superuser can {what} a superuser.")


@transaction.atomic
def set_role(user, is_staff: bool, *, by) -> None:
    """Make an account an admin (`is_staff`) or a teacher. An admin cannot change their own role
    (nobody might be left to undo it); only a superuser changes a superuser's."""
    if user.is_staff == is_staff:
        return
    if user.pk == by.pk:
        raise PeopleError("You cannot change your own role.")
    _superuser_only(user, by, "change the role of")
    user.is_staff = is_staff
    user.save(update_fields=["is_staff"])
    audit(by, AuditAction.ROLE, user, old=_role(not is_staff), new=_role(is_staff))


@transaction.atomic
def reset_password(user, *, by) -> str:
    """Give an account a new generated password, returned once (a teacher who forgot theirs).

    Browser sessions logged in with the old password end (Django checks a hash of it); API
    tokens are separate credentials and stay valid until revoked. The account's failed log-ins
    are forgotten. Only a superuser sets a superuser's password.
    """
    _superuser_only(user, by, "set a new password for")
    password = generate_password()
    user.set_password(password)
    user.save(update_fields=["password"])
    clear_failures(user)
    audit(by, AuditAction.PASSWORD_RESET, user)
    return password


@transaction.atomic
def unlock(user, *, by) -> None:
    """Forget an account's failed log-ins from every address, so it may log in again now."""
    clear_failures(user)
    audit(by, AuditAction.UNLOCK, user)
