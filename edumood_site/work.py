"""The one lifecycle of background work, shared by jobs (classifier) and photo analyses
(analytics).

A row is claimed with a conditional UPDATE (so two deliveries of one message never run it twice
at once), kept alive by a heartbeat thread while its work runs, reports progress and reads its
cancel flag at most about once a second, and is closed as finished, cancelled or failed, also
when its queue's soft time limit stops it, by the run that holds the claim only (a run that lost
its claim writes nothing). A worker that dies leaves a stale heartbeat: the periodic sweep
(`sweep_every_kind`, on the beat schedule) queues the row again, at most MAX_ATTEMPTS times,
then fails it with the reason.

A queued row's message is sent by `dispatch`, which stamps `sent_at`. Kinds with an owner
(FAIR_SHARE) keep at most `fair_share_window()` rows of each owner in flight (sent or running),
topped up oldest first as they finish, so one owner's hundreds of rows wait in the database,
not ahead of everyone else in the broker. A row still queued `EDUMOOD_RESEND_SECONDS` after its
message went out lost that message (a crash between commit and publish, a wedged publish, a
broker restart): the sweep sends it again; a duplicate is harmless, the claim runs it once.

Every kind of work moves queued -> running -> one terminal state, and its model names those
roles (`QUEUED`, `RUNNING`, `TERMINAL`): that is all this module reads. The stored words differ
by audience, one mapping: a job (admins) is queued / running / succeeded, failed or cancelled;
a photo (teachers) is queued / analysing (running) / done (succeeded) or failed, and is never
cancelled (it is deleted). Pages and the API show each row's own words.

Tasks are sent by name (each app's tasks.py registers them), so services and tasks never import
each other: tasks call services, services enqueue names.
"""

import logging
import math
import platform
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property

from celery.exceptions import SoftTimeLimitExceeded
from django.apps import apps
from django.conf import settings
from django.db import OperationalError, connection, models
from django.db.models import Count, F, Q
from django.utils import timezone

logger = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL = 1.0  # seconds; progress is cheap to compute but each write is a query
CANCEL_READ_INTERVAL = 1.0  # seconds; a cancel may wait this long, a batch should not wait a query
# Seconds between a task's soft time limit (the row is closed with the reason) and the hard
# kill, which would leave the row running for the stale sweep to queue again.
HARD_LIMIT_GRACE = 30
# SQLite answers "database is locked" to a write that waited its whole timeout (30 s) for
# another writer. A heartbeat or progress write waits and tries again for this long before the
# error ends the work: a long lock must not fail a day of training.
LOCKED_RETRY_SECONDS = 600


def write_when_unlocked(write: Callable[[], object], retry_for: float = LOCKED_RETRY_SECONDS):
    """Run a small write, trying again (after 0.1 s, doubling to 5 s) while the database is
    locked; other errors, and a lock that outlasts `retry_for`, are raised."""
    deadline, pause = time.monotonic() + retry_for, 0.1
    while True:
        try:
            return write()
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            logger.warning("The database is locked; writing again in %.1f s", pause)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


class WorkCancelled(Exception):  # noqa: N818  (a signal, not an error)
    """Raised by work that saw its cancel flag; carries what was finished so far."""

    def __init__(self, partial_result=None):
        super().__init__("cancelled")
        self.partial_result = partial_result


class Throttle:
    """Says yes at most once per interval: for progress writes and cancel-flag reads."""

    def __init__(self, interval: float):
        self.interval = interval
        self.last = -math.inf

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return False
        self.last = now
        return True


def queue_time_limit(queue: str) -> int:
    return {
        "inference": settings.CELERY_INFERENCE_TIME_LIMIT,
        "training": settings.CELERY_TRAINING_TIME_LIMIT,
    }[queue]


def time_limit_message(queue: str, seconds: float | None) -> str:
    """The reason a row gets when its task hit the soft time limit it was sent with."""
    return (
        f"Stopped at the {queue} queue's time limit of {seconds or queue_time_limit(queue):g} s;"
        " raise the limit or shorten the work."
    )


def enqueue(task: str, pk: int, queue: str) -> None:
    """Send the task of that name for a row, with its queue's soft and hard time limits."""
    from edumood_site.celery import app

    limit = queue_time_limit(queue)
    options = {"queue": queue, "soft_time_limit": limit, "time_limit": limit + HARD_LIMIT_GRACE}
    app.signature(task, args=(pk,), options=options).apply_async()


class BackgroundWork(models.Model):
    """A row a worker performs: its attempts, heartbeat and the steps of its lifecycle.

    Subclasses have a `status` field and name its values (QUEUED, RUNNING, TERMINAL), the task
    that performs them (TASK), and how they finish and fail.
    """

    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the row's message was last sent to the broker; null while it waits for `dispatch`.
    sent_at = models.DateTimeField(null=True, blank=True)

    MAX_ATTEMPTS = 3
    QUEUED = RUNNING = ""
    TERMINAL: frozenset = frozenset()
    TASK = ""
    # The lookup of the owner whose rows share one window of the broker (empty: no window).
    FAIR_SHARE = ""
    WORKER_STOPPED = "The worker stopped while running this."

    class Meta:
        abstract = True

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def queue(self) -> str:
        return "inference"

    @classmethod
    def stale_seconds(cls) -> int:
        """How long a running row's heartbeat may be silent before its worker counts as dead."""
        return settings.EDUMOOD_JOB_STALE_SECONDS

    def claimable(self):
        """The rows a claim may move: this one (subclasses add conditions)."""
        return type(self).objects.filter(pk=self.pk)

    def claim(self, **updates) -> bool:
        """Atomically move a queued (or abandoned running) row to running; False if not ours.

        A redelivered message, or a second worker, finds the row running with a fresh heartbeat
        and backs off; a dead worker's row goes stale and can be taken over.
        """
        now = timezone.now()
        stale = now - timedelta(seconds=self.stale_seconds())
        claimed = (
            self.claimable()
            .filter(
                Q(status=self.QUEUED)
                | Q(status=self.RUNNING, heartbeat_at__lt=stale)
                | Q(status=self.RUNNING, heartbeat_at__isnull=True)
            )
            .update(status=self.RUNNING, heartbeat_at=now, attempts=F("attempts") + 1, **updates)
        )
        self.refresh_from_db()
        return bool(claimed)

    def enqueue(self) -> None:
        """Send the row's message now (stamped first: a publish that never returns is resent)."""
        type(self).objects.filter(pk=self.pk).update(sent_at=timezone.now())
        enqueue(self.TASK, self.pk, self.queue)

    def held_claim(self):
        """This row while it is not closed and no later claim took it over (keyed on
        `attempts`): a run whose heartbeat went stale and whose row another worker claimed
        matches nothing, so what it writes through this is dropped."""
        return (
            type(self)
            .objects.filter(pk=self.pk, attempts=self.attempts)
            .exclude(status__in=self.TERMINAL)
        )

    @classmethod
    def fair_share_window(cls) -> int:
        return settings.EDUMOOD_FAIR_SHARE_WINDOW

    @classmethod
    def dispatch(cls, owner=None) -> int:
        """Send the messages of queued rows that wait for one (of one owner, or of all); how
        many.

        Without FAIR_SHARE every waiting row is sent. With it, each owner keeps at most
        `fair_share_window()` rows in flight, and the owners' rows are sent in turn, so the
        broker's queue holds a few rows of each owner: a row waits behind at most a window of
        each other owner's rows, however many they queued.
        """
        waiting = cls.objects.filter(status=cls.QUEUED, sent_at__isnull=True)
        if not cls.FAIR_SHARE:
            turns = [[row] for row in waiting.order_by("pk")]
        else:
            if owner is not None:
                waiting = waiting.filter(**{cls.FAIR_SHARE: owner})
            owners = set(waiting.order_by().values_list(cls.FAIR_SHARE, flat=True).distinct())
            in_flight = dict(
                cls.objects.filter(**{f"{cls.FAIR_SHARE}__in": owners})
                .filter(Q(status=cls.RUNNING) | Q(status=cls.QUEUED, sent_at__isnull=False))
                .order_by()
                .values_list(cls.FAIR_SHARE)
                .annotate(count=Count("pk"))
            )
            window = cls.fair_share_window()
            queues = []  # each owner's oldest waiting rows, as many as its window has room for
            for each in sorted(owners):
                room = max(0, window - in_flight.get(each, 0))
                queues.append(list(waiting.filter(**{cls.FAIR_SHARE: each}).order_by("pk")[:room]))
            turns = [[q[i] for q in queues if i < len(q)] for i in range(window)]
        sent = 0
        for turn in turns:  # one row of each owner, then the next of each
            for row in turn:
                # Conditional: of two dispatchers (an upload and a finishing worker), one sends.
                taken = cls.objects.filter(pk=row.pk, status=cls.QUEUED, sent_at__isnull=True)
                if taken.update(sent_at=timezone.now()):
                    enqueue(cls.TASK, row.pk, row.queue)
                    sent += 1
        return sent

    @classmethod
    def resend_lost(cls) -> int:
        """Send again the queued rows whose message went out EDUMOOD_RESEND_SECONDS ago and was
        never taken by a worker (lost before or in the broker); how many."""
        lost = timezone.now() - timedelta(seconds=settings.EDUMOOD_RESEND_SECONDS)
        count = 0
        for row in cls.objects.filter(status=cls.QUEUED, sent_at__lt=lost):
            # Conditional update: when several workers sweep at once, only one resends a row.
            if cls.objects.filter(pk=row.pk, status=cls.QUEUED, sent_at__lt=lost).update(
                sent_at=timezone.now()
            ):
                row.note("Its message was not taken by a worker in time; sent again.")
                enqueue(cls.TASK, row.pk, row.queue)
                count += 1
        return count

    @classmethod
    def sweep(cls) -> int:
        """Everything the periodic sweep does for this kind; how many rows it touched."""
        return cls.recover_abandoned() + cls.resend_lost() + cls.dispatch()

    # Hooks of the steps; subclasses record what their pages show.
    def note(self, line: str) -> None:
        """A line for the row's log (rows without a log ignore it)."""

    def not_claimed(self) -> None:
        """Called when a delivery finds the row taken or not claimable."""

    def failure_reason(self, exc: Exception) -> str:
        return f"{type(exc).__name__}: {exc}"

    def finish(self, result=None) -> None:
        raise NotImplementedError

    def fail(self, reason: str) -> None:
        raise NotImplementedError

    def mark_cancelled(self, result=None) -> None:
        raise NotImplementedError

    @contextmanager
    def beating(self):
        """Touch the heartbeat from a side thread while long work runs.

        The work may sit in one long call (loading data, a big forward pass), so the heartbeat
        cannot rely on progress callbacks; a stale heartbeat is how a dead worker shows.
        """
        rows, interval = self.held_claim(), self.heartbeat_interval()
        stop = threading.Event()

        def beat():
            try:
                while not stop.wait(interval):
                    try:
                        write_when_unlocked(lambda: rows.update(heartbeat_at=timezone.now()))
                    except Exception:  # the next beat tries again; the work goes on
                        logger.exception("A heartbeat of %s %s failed", self._meta.label, self.pk)
            finally:
                connection.close()

        thread = threading.Thread(target=beat, name=f"heartbeat-{self._meta.label}-{self.pk}")
        thread.daemon = True
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    @classmethod
    def heartbeat_interval(cls) -> float:
        return max(1.0, cls.stale_seconds() / 4)

    @cached_property
    def progress_writes(self) -> Throttle:
        return Throttle(PROGRESS_WRITE_INTERVAL)

    @cached_property
    def cancel_reads(self) -> Throttle:
        return Throttle(CANCEL_READ_INTERVAL)

    @classmethod
    def recover_abandoned(cls) -> int:
        """Queue again (or fail, after too many tries) rows whose worker died; how many."""
        stale = timezone.now() - timedelta(seconds=cls.stale_seconds())
        count = 0
        for row in cls.objects.filter(status=cls.RUNNING, heartbeat_at__lt=stale):
            if row.attempts >= cls.MAX_ATTEMPTS:
                row.fail(f"Gave up after {row.attempts} attempts. {cls.WORKER_STOPPED}")
                count += 1
                continue
            # Conditional update: when several workers sweep at once, only one requeues a row.
            requeued = cls.objects.filter(
                pk=row.pk, status=cls.RUNNING, heartbeat_at__lt=stale
            ).update(status=cls.QUEUED)
            if requeued:
                row.note("The worker running this stopped; queued again.")
                row.enqueue()  # it was in flight: it keeps its place in its owner's window
                count += 1
        return count


def perform(
    rows: models.QuerySet,
    pk: int,
    work: Callable[[BackgroundWork], object],
    *,
    claim_options: dict | None = None,
    soft_time_limit: float | None = None,
) -> None:
    """Claim the row `pk` of `rows` and run `work(row)` under its heartbeat; close the row.

    Idempotent: a missing or terminal row, or one another worker holds, is left alone. The
    row finishes with work's return value, is cancelled on WorkCancelled, and fails with the
    reason on anything else (the soft time limit included); each only while the claim is
    still this run's (`held_claim`). Then the row's owner gets its next row sent (`dispatch`).
    """
    try:
        _perform(rows, pk, work, claim_options, soft_time_limit)
    finally:
        kind = rows.model
        if kind.FAIR_SHARE:
            owner = kind.objects.filter(pk=pk).values_list(kind.FAIR_SHARE, flat=True).first()
            if owner is not None:
                kind.dispatch(owner)


def _perform(rows, pk, work, claim_options, soft_time_limit) -> None:
    row = rows.filter(pk=pk).first()
    if row is None or row.is_terminal:
        return
    if not row.claim(**(claim_options or {})):
        row.not_claimed()
        return
    if row.attempts > row.MAX_ATTEMPTS:
        row.fail(f"Gave up after {row.MAX_ATTEMPTS} attempts. {row.WORKER_STOPPED}")
        return
    if row.attempts > 1:
        row.note(f"Attempt {row.attempts}: the previous worker stopped; starting again.")
    row.note(f"Started on {platform.node()}")
    try:
        with row.beating():
            result = work(row)
    except WorkCancelled as cancelled:
        row.note("Cancelled; finished work kept.")
        row.mark_cancelled(cancelled.partial_result)
    except SoftTimeLimitExceeded:
        reason = time_limit_message(row.queue, soft_time_limit)
        row.note(reason)
        row.fail(reason)
    except Exception as exc:
        logger.exception("%s %s failed", row._meta.label, row.pk)
        reason = row.failure_reason(exc)
        row.note(f"Failed: {reason}")
        row.fail(reason)
    else:
        row.note("Finished")
        row.finish(result)


def sweep_every_kind() -> int:
    """Sweep every kind of background work (`BackgroundWork.sweep`: recover abandoned rows,
    resend lost messages, send waiting rows); how many rows it touched. The beat schedule runs
    it (settings.CELERY_BEAT_SCHEDULE); a kind whose sweep fails does not stop the others.

    The embedded filesystem broker never redelivers a dead worker's message, and Redis does so
    only after its visibility timeout, so the rows themselves (with their heartbeats and
    `sent_at`) are the source of truth for what is abandoned or lost.
    """
    total = 0
    for kind in (m for m in apps.get_models() if issubclass(m, BackgroundWork)):
        try:
            touched = kind.sweep()
        except Exception:
            logger.exception("Recovery sweep of %s failed", kind._meta.label)
            continue
        if touched:
            logger.warning("Swept %d %s row(s)", touched, kind._meta.label)
        total += touched
    return total
