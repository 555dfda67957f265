"""Limits on log-in attempts: per (account, address) pair against guessing one password, and per
address against volume, shared by every web process.

Every way in (the API's token endpoint, the browser's /login/, the Django admin's login) checks
passwords through `LimitedModelBackend`, which takes an attempt from both budgets *before* the
password is tried: the check and the count are one conditional UPDATE of a database row
(`LoginBudget`), so 80 concurrent guesses get exactly the budget's tries, whichever process
answers them. A right password gives the attempt back; a wrong one keeps it spent.

Each budget is a GCRA ("generic cell rate algorithm") with a rate such as 10/hour: a burst of
10 attempts, then one more every 6 minutes. That is a short backoff that slides with the
guesser, not a lock until the clock hour ends. Locking a pair locks that account only from
that address: a guesser elsewhere cannot lock a teacher out. An address's volume budget is
large (a school behind one NAT address shares it), and pairs that logged in successfully in the
last KNOWN_PAIR_DAYS skip it, so made-up usernames from a shared address cannot lock out the
people who usually log in from there. A new password, or *Unlock* on People, restores an
account's pairs.
"""

import math
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from .models import LoginBudget

KNOWN_PAIR_DAYS = 30
# Where a refused attempt leaves its wait for the page or API answer that follows.
RETRY_AFTER_ATTRIBUTE = "login_retry_after"


def client_address(request) -> str:
    """The caller's address: the peer's, unless EDUMOOD_TRUSTED_PROXIES proxies stand in front.

    DRF's throttles identify clients the same way (NUM_PROXIES is set from that setting), so
    an X-Forwarded-For written by the client itself never changes who it is.
    """
    return (BaseThrottle().get_ident(request) or "")[:64]


def _interval_and_period(rate: str) -> tuple[float, int]:
    allowed, period = SimpleRateThrottle.parse_rate(None, rate)
    return period / allowed, period


def _take(account: str, address: str, rate: str, now: float) -> float:
    """Take one attempt from a budget: 0 when taken, else the seconds until one is free.

    GCRA: `refilled_at` moves one interval later per attempt (from now, when it lies in the
    past), and an attempt is refused while that would put it more than a period ahead.
    """
    interval, period = _interval_and_period(rate)
    budget = LoginBudget.objects.filter(account=account, address=address)
    latest = now + period - interval
    while True:
        taken = budget.filter(refilled_at__lte=latest).update(
            refilled_at=Greatest(F("refilled_at"), Value(now)) + interval
        )
        if taken:
            return 0
        row = budget.only("refilled_at").first()
        if row is None:
            _sweep(now)
            _, created = LoginBudget.objects.get_or_create(
                account=account, address=address, defaults={"refilled_at": now + interval}
            )
            if created:
                return 0
        elif row.refilled_at > latest:
            return row.refilled_at - latest
        # Created, refilled or swept by another process in between: take again.


def _give_back(account: str, address: str, rate: str) -> None:
    interval, _ = _interval_and_period(rate)
    LoginBudget.objects.filter(account=account, address=address).update(
        refilled_at=F("refilled_at") - interval
    )


def _sweep(now: float) -> None:
    """Forget full budgets (they say nothing a missing row does not), unless they remember a
    recent success. Run when a row is created, so guessing with made-up names cannot grow the
    table beyond what an hour of the address limit allows."""
    known_since = timezone.now() - timedelta(days=KNOWN_PAIR_DAYS)
    LoginBudget.objects.filter(refilled_at__lt=now).filter(
        Q(succeeded_at__isnull=True) | Q(succeeded_at__lt=known_since)
    ).delete()


@dataclass
class Attempt:
    """One log-in attempt that has taken its place in the budgets."""

    account: str
    address: str
    counted_for_address: bool

    def succeeded(self) -> None:
        """A right password: the pair's budget is full again and remembered as known, and the
        address gets its attempt back (its limit is on failures)."""
        LoginBudget.objects.filter(account=self.account, address=self.address).update(
            refilled_at=0, succeeded_at=timezone.now()
        )
        if self.counted_for_address:
            _give_back("", self.address, settings.EDUMOOD_LOGIN_ADDRESS_RATE)


def take_attempt(request, username: str) -> Attempt | int:
    """Take a log-in attempt from the pair's and the address's budgets; the Attempt, or the
    whole seconds to wait when either budget is spent (then nothing is taken)."""
    now = time.time()
    account, address = username.casefold(), client_address(request)
    pair_rate = settings.EDUMOOD_LOGIN_PAIR_RATE
    wait = _take(account, address, pair_rate, now)
    if wait:
        return math.ceil(wait)
    known_since = timezone.now() - timedelta(days=KNOWN_PAIR_DAYS)
    known = LoginBudget.objects.filter(
        account=account, address=address, succeeded_at__gte=known_since
    ).exists()
    if known:
        return Attempt(account, address, counted_for_address=False)
    wait = _take("", address, settings.EDUMOOD_LOGIN_ADDRESS_RATE, now)
    if wait:
        _give_back(account, address, pair_rate)
        return math.ceil(wait)
    return Attempt(account, address, counted_for_address=True)


class LimitedModelBackend(ModelBackend):
    """Django's username and password check, behind the log-in limits.

    Requests only: scripts and management commands (no request) are not limited. A refused
    attempt never reaches the password hasher; its wait is left on the request for the page
    or API answer (`retry_after`).
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if request is None or username is None or password is None:
            return super().authenticate(request, username, password, **kwargs)
        if not str(username):
            return None  # no one logs in with an empty name, and "" names an address's budget
        attempt = take_attempt(request, str(username))
        if isinstance(attempt, int):
            setattr(request, RETRY_AFTER_ATTRIBUTE, attempt)
            raise PermissionDenied("Too many failed log-ins.")  # ends authenticate() at once
        user = super().authenticate(request, username, password, **kwargs)
        if user is not None:
            attempt.succeeded()
        return user


def retry_after(request) -> int:
    """Seconds to wait, when this request's log-in was refused by the limits; else 0."""
    return getattr(request, RETRY_AFTER_ATTRIBUTE, 0)


def locked_accounts() -> set[str]:
    """Casefolded usernames that at least one address may not try now."""
    interval, period = _interval_and_period(settings.EDUMOOD_LOGIN_PAIR_RATE)
    latest = time.time() + period - interval
    return set(
        LoginBudget.objects.exclude(account="")
        .filter(refilled_at__gt=latest)
        .values_list("account", flat=True)
    )


def clear_failures(user) -> None:
    """Give every address its full budget for this account (a new password, or an admin's
    unlock); the pairs it logged in from stay known."""
    LoginBudget.objects.filter(account=user.get_username().casefold()).update(refilled_at=0)


def wait_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"Too many failed log-ins. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
