"""Draining the outbox: claim due deliveries, compose, send, record each outcome.

Record first, send, record the outcome: a delivery is leased before it is sent and
marked sent in its own small transaction right after the server's 250 reply, so a
crash can repeat at most the messages in flight. 4xx replies, timeouts and drops are
retried with exponential backoff; 5xx replies fail at once and count as a hard
bounce. When the latest attempts of too many deliveries fail, the edition pauses and
says why; `send-now` resumes it. A relay that fails every connection (unreachable,
refusing the session or our sender) is no reader's fault: the run stops, its
deliveries go back untouched, and `Counters.relay_error` says why.

How it goes fast without loosening that: one thread claims batches and composes
(optionally in worker processes, `DrainOptions.processes`), a bounded queue feeds
one sending thread per SMTP connection, and sent marks are group-committed by
MarkWriter: a connection sends nothing more until its mark is durable.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from newsletter.delivery.claimed import InlineComposer, Job, JobLoader, ProcessComposer
from newsletter.delivery.compose import Composer
from newsletter.delivery.guards import (
    _RUNNING_HERE,
    Leavers,
    RelayWatch,
    lease_owner,
    owner_is_gone,
)
from newsletter.delivery.marks import MarkWriter
from newsletter.delivery.outcomes import Counters, Outcome, Outcomes, judge_editions
from newsletter.mail.message import OutgoingMessage
from newsletter.mail.smtp import RelayError, SendError, SmtpPool
from newsletter.runtime import Runtime
from newsletter.store import claims as claims_mod
from newsletter.store import db
from newsletter.store import deliveries as deliveries_mod
from newsletter.store import editions as editions_mod
from newsletter.store.claims import LeaseHold
from newsletter.store.models import utcnow

Ready = tuple[Job, OutgoingMessage]  # a composed message waiting for a connection
POLL_SECONDS = 5.0  # how often a looping worker looks for due work when idle


class Transport(Protocol):
    size: int

    def send(self, sender: str, recipient: str, data: bytes) -> None: ...


@dataclass
class DrainOptions:
    edition_id: int | None = None  # None: every edition that is sending
    subscriber_id: int | None = None
    ignore_schedule: bool = False  # send-now: deliver never-tried ones at once
    wait_for_retries: bool = False  # keep going until the edition has nothing open
    loop: bool = False  # a worker that keeps polling until stopped
    batch_size: int | None = None
    processes: int = 0  # > 0: compose in that many processes (see ProcessComposer)


class Drainer:
    """One run of sending: a lease owner, a composer, a pool, and the counters.

    The calling thread claims batches and queues their jobs; one sending thread per
    SMTP connection composes, sends and records each. The queue holds one batch, so
    the next batch is claimed while the current one goes out.
    """

    def __init__(
        self,
        context: Runtime,
        transport: Transport,
        *,
        composer: Composer | None = None,
        stop: threading.Event | None = None,
        progress: Callable[[Counters], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.context = context
        self.settings = context.settings
        self.transport = transport
        self.composer = composer or Composer(context.settings, context.secret_key)
        self.stop = stop or threading.Event()
        self.progress = progress or (lambda counters: None)
        self.clock = clock
        self.owner = lease_owner()
        self.counters = Counters()
        self.loader = JobLoader(context)
        self.writer = MarkWriter(context)
        self.composing: InlineComposer | ProcessComposer = InlineComposer(self.composer)
        self.relay = RelayWatch(transport.size)
        self.leavers = Leavers(context)
        self._halt = threading.Event()  # paused or broken: queued jobs go back untouched
        self.outcomes = Outcomes(
            context,
            self.owner,
            self.counters,
            self.progress,
            clock,
            self.relay,
            self._halt,
            self.stop,
        )
        self._released: list[int] = []
        self._errors: list[BaseException] = []

    def run(self, options: DrainOptions) -> Counters:
        if options.processes > 0:
            secret = self.context.secret_key
            self.composing = ProcessComposer(self.settings, secret, options.processes)
        _RUNNING_HERE.add(self.owner)
        try:
            return self._run(options)
        finally:
            _RUNNING_HERE.discard(self.owner)
            self.composing.close()

    def _run(self, options: DrainOptions) -> Counters:
        size = options.batch_size or self.settings.delivery.batch_size
        # Composed messages waiting for a connection: enough to keep every connection
        # busy while the next batch is claimed, few enough to bound memory.
        jobs: queue.Queue[Ready | None] = queue.Queue(max(4 * self.transport.size, min(size, 200)))
        senders = [
            threading.Thread(target=self._sender, args=(jobs,), name=f"send-{n}", daemon=True)
            for n in range(self.transport.size)
        ]
        for thread in senders:
            thread.start()
        try:
            self._feed(options, size, jobs)
        finally:
            if self._errors or self.stop.is_set():
                self._halt.set()
            for _ in senders:
                jobs.put(None)
            for thread in senders:
                thread.join()
            self.writer.close()
            if self._released:
                with db.transaction(self.context.sessions) as session:
                    claims_mod.release(session, self.owner, self._released)
                self.counters.add("released", len(self._released))
        if self._errors:
            raise self._errors[0]
        self.counters.finished = time.monotonic()
        return self.counters

    def _feed(self, options: DrainOptions, size: int, jobs: queue.Queue[Ready | None]) -> None:
        editions: set[int] = set()
        checked = 0  # outcomes seen by the last failure check
        self._take_back_from_the_gone(options.edition_id)
        while not (self.stop.is_set() or self._errors):
            claimed = self._claim(options, size)
            self._compose_into(jobs, claimed)
            if not claimed:
                jobs.join()  # everything claimed so far has an outcome
            editions |= {j.delivery.edition_id for j in claimed}
            outcomes = self.counters.attempts
            # The failure breaker judges what was sent: once per batch of outcomes.
            if outcomes - checked >= size or (not claimed and outcomes > checked):
                checked = outcomes
                judge_editions(self.context, self.clock(), editions)
            if options.edition_id is not None and self._paused(options.edition_id):
                self._halt.set()
                jobs.join()
                break
            if self.counters.relay_error:
                if not options.loop:
                    break
                self._rest_after_outage(jobs)
                continue  # it has just waited: claim again at once (or stop if asked)
            if not claimed and not self._wait_for_more(options):
                break

    def _rest_after_outage(self, jobs: queue.Queue[Ready | None]) -> None:
        """A looping worker outlives a relay outage: give everything back, wait, retry."""
        jobs.join()  # the halted senders hand back what was queued
        with self.counters._lock:
            released, self._released = self._released, []
        with db.transaction(self.context.sessions) as session:
            claims_mod.release(session, self.owner, released)
        self.counters.add("released", len(released))
        self.counters.waiting = f"{self.counters.relay_error}; trying again in {POLL_SECONDS:g} s"
        self.progress(self.counters)
        self.stop.wait(POLL_SECONDS)
        self.counters.relay_error = self.counters.waiting = None
        self._halt.clear()

    def _compose_into(self, jobs: queue.Queue[Ready | None], claimed: Sequence[Job]) -> None:
        """Compose on this one thread (or its processes): senders hardly need the GIL."""
        composed = self.composing.compose_all(claimed)
        queued = 0
        try:
            for job, message in zip(claimed, composed, strict=True):
                if self._halt.is_set() or self.stop.is_set() or self._errors:
                    break
                queued += 1
                if isinstance(message, str):  # unusable data for this reader (e.g. address)
                    self.outcomes.failed(
                        job.delivery, f"cannot compose: {message}", hard_bounce=False
                    )
                    continue
                jobs.put((job, message))  # blocks while the connections are busy
        finally:  # stopping, or composing broke: the rest goes back untouched
            with self.counters._lock:
                self._released.extend(j.delivery.id for j in claimed[queued:])

    def _sender(self, jobs: queue.Queue[Ready | None]) -> None:
        while (ready := jobs.get()) is not None:
            job, message = ready
            try:
                if self._halt.is_set() or self.stop.is_set() or self._errors:
                    outcome: Outcome = "released"  # leave it for the next worker, untouched
                else:
                    outcome = self._deliver(job, message)
                if outcome == "released":
                    with self.counters._lock:
                        self._released.append(job.delivery.id)
            except BaseException as exc:  # surfaced by run(); the rest is released
                self._errors.append(exc)
                with self.counters._lock:
                    self._released.append(job.delivery.id)
            finally:
                jobs.task_done()
        jobs.task_done()

    # --- claiming ---

    def _claim(self, options: DrainOptions, size: int) -> list[Job]:
        now = self.clock()
        with db.transaction(self.context.sessions, immediate=True) as session:
            claimed, skipped = claims_mod.claim_batch(
                session,
                self.owner,
                now,
                self.settings.delivery.lease_seconds,
                size,
                edition_id=options.edition_id,
                subscriber_id=options.subscriber_id,
                ignore_schedule=options.ignore_schedule,
            )
        if skipped:
            self.counters.add("skipped", skipped)
            self.progress(self.counters)
        if not claimed:
            return []
        with db.transaction(self.context.sessions) as session:
            return self.loader.load(session, claimed)

    def _take_back_from_the_gone(self, edition_id: int | None) -> tuple[list[LeaseHold], int]:
        """Requeue claims of dead processes on this host at once, rather than after
        their leases expire; returns the other holders and how many were taken back."""
        now = self.clock()
        with db.transaction(self.context.sessions, immediate=True) as session:
            holders = claims_mod.lease_holders(session, edition_id, now)
            gone = [h.owner for h in holders if owner_is_gone(h.owner)]
            taken = claims_mod.take_back(session, gone) if gone else 0
        return [h for h in holders if h.owner not in gone and h.owner != self.owner], taken

    def _wait_for_more(self, options: DrainOptions) -> bool:
        """Nothing due now: sleep until something may be, or say the run is over."""
        if not (options.loop or options.wait_for_retries):
            return False
        edition_id = options.edition_id
        with db.transaction(self.context.sessions, immediate=True) as session:  # reads, writes
            if edition_id is not None and not deliveries_mod.count_open(session, edition_id):
                editions_mod.finish_edition_if_complete(session, edition_id, self.clock())
                return False
        holders, taken = self._take_back_from_the_gone(edition_id)
        if taken:
            return True  # claim them at once
        now = self.clock()
        with db.transaction(self.context.sessions) as session:
            wake = deliveries_mod.next_wakeup(session, edition_id)
            backlog = deliveries_mod.retry_backlog(session, edition_id, now)
        delay = POLL_SECONDS
        if wake is not None:
            delay = min(delay, max((wake - now).total_seconds(), 0.0) + 0.01)
            self.counters.waiting = _waiting_line(wake - now, backlog, holders)
            self.progress(self.counters)
        self.stop.wait(delay)
        self.counters.waiting = None
        return True

    def _paused(self, edition_id: int) -> bool:
        with db.transaction(self.context.sessions) as session:
            edition = editions_mod.get_edition_by_id(session, edition_id)
        if edition is not None and edition.status == "paused":
            self.counters.paused_reason = edition.paused_reason
            return True
        return False

    # --- sending ---

    def _deliver(self, job: Job, message: OutgoingMessage) -> Outcome:
        if job.delivery.subscriber_id in self.leavers:
            return self.outcomes.skipped(job.delivery)
        try:
            self.transport.send(message.sender, message.recipient, message.data)
        except RelayError as exc:
            return self.outcomes.relay_failed(job.delivery, exc)
        except SendError as exc:
            self.relay.answered()
            return self.outcomes.refused(job.delivery, exc)
        self.relay.answered()
        # Nothing more goes out on this connection until the mark is committed.
        self.writer.sent(deliveries_mod.SentMark(job.delivery, message.message_id, self.clock()))
        self.counters.add("sent")
        self.progress(self.counters)
        return "sent"


def _waiting_line(
    wait: timedelta, backlog: tuple[int, str | None], holders: Sequence[LeaseHold]
) -> str:
    """What an idle run waits for, for the progress line."""
    parts = []
    retries, last_error = backlog
    if retries:
        parts.append(
            f"waiting {math.ceil(wait.total_seconds())} s to retry {_deliveries(retries)}"
            + (f" (last error: {last_error})" if last_error else "")
        )
    for hold in holders:
        host_pid = hold.owner.rsplit(":", 1)[0]
        parts.append(
            f"{_deliveries(hold.count)} {'is' if hold.count == 1 else 'are'} claimed by "
            f"{host_pid} until {hold.until:%H:%M:%S} UTC"
        )
    return "; ".join(parts) or f"waiting {math.ceil(wait.total_seconds())} s"


def _deliveries(count: int) -> str:
    return f"{count} {'delivery' if count == 1 else 'deliveries'}"


def drain(
    context: Runtime,
    options: DrainOptions,
    *,
    transport: Transport | None = None,
    composer: Composer | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[Counters], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Counters:
    """Send what is due (see DrainOptions) over `transport` or a new SMTP pool."""
    pool = transport or SmtpPool(context.settings.smtp)
    try:
        drainer = Drainer(
            context, pool, composer=composer, stop=stop, progress=progress, clock=clock
        )
        return drainer.run(options)
    finally:
        if transport is None and isinstance(pool, SmtpPool):
            pool.close()
