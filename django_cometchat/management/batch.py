"""Run one job per owner, inline or on a thread pool, and stop early when it is pointless to go on.

``concurrent.futures.ThreadPoolExecutor`` does the threading: at most ``2 * concurrency`` jobs are
in flight, so an ``--all`` over a million users never queues them all; clients are lent from a
pool of ``concurrency``; each job closes its thread's database connections when it ends.

Stopping:

* SIGINT (Ctrl-C) or SIGTERM (see :mod:`.stopping`): nothing new starts, jobs still queued are
  cancelled, running ones are interrupted at their next request, socket read or wait, record
  their runs failed ("interrupted (SIGTERM)") and are reported (pages stored before are kept:
  each is its own transaction); a second signal does not abandon them.
* a failure that every later owner would hit too stops the run at once: an outage (CometChat
  unreachable, failing or rate limiting past the retry budget, a deadline) or a global failure
  (a refused key, a missing setting, a plan restriction). The rule is the admin's and the
  tasks' too: :func:`django_cometchat.batches.stops_batch`; the counts are a
  :class:`~django_cometchat.batches.Totals`.
"""

from __future__ import annotations

import queue
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from django.db import close_old_connections, connections

from .. import services
from ..batches import Totals
from . import stopping
from .reporting import Outcome

if TYPE_CHECKING:  # annotations only: services create and use the client
    from ..client import CometChatClient

Job = Callable[[services.Owner, "CometChatClient"], Outcome]


class BatchRunner:
    def __init__(
        self,
        job: Job,
        *,
        concurrency: int,
        report: Callable[[Outcome], None],
        note: Callable[[str], None],
        totals: Totals | None = None,
    ) -> None:
        self.job = job
        self.concurrency = concurrency
        self.report = report
        self.note = note
        self.totals = totals if totals is not None else Totals()

    def run(self, owners: Iterable[services.Owner]) -> Totals:
        clients: queue.SimpleQueue[CometChatClient] = queue.SimpleQueue()
        made = [services.new_client() for _ in range(self.concurrency)]
        for client in made:
            clients.put(client)
        try:
            if self.concurrency == 1:
                self._run_inline(owners, made[0])
            else:
                self._run_threaded(owners, clients)
        finally:
            for client in made:
                client.close()
        return self.totals

    def _handle(self, outcome: Outcome) -> None:
        """Count the outcome (the stop rule decides whether the run goes on), then show it."""
        if outcome.ok:
            self.totals.succeed(outcome.result)
        else:
            error = outcome.error or Exception(outcome.reason)
            self.totals.fail(outcome.label, outcome.reason, error, outcome.result)
        self.report(outcome)

    def _run_inline(self, owners: Iterable[services.Owner], client: CometChatClient) -> None:
        try:
            for owner in owners:
                self._handle(self.job(owner, client))
                if self.totals.stopped:
                    return
        except KeyboardInterrupt:  # between two owners
            self.totals.interrupted = True

    def _run_threaded(
        self, owners: Iterable[services.Owner], clients: queue.SimpleQueue[CometChatClient]
    ) -> None:
        # Workers hand each outcome over here exactly once, whatever Ctrl-C interrupts.
        outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="cometchat_sync")
        in_flight: set[Future[None]] = set()
        # A signal only interrupts the workers' syncs and sets a flag while threads run: a
        # KeyboardInterrupt raised at a random point of the main thread (inside submit(), or
        # while an outcome is reported) would lose track of a job or of its outcome. The
        # handler stays until the workers are joined, so a second signal does not abandon
        # them either: each records its run, and the report should name every user that ran.
        previous = stopping.on_signals(self._interrupted)
        failed = True
        try:
            self._submit(owners, pool, in_flight, clients, outcomes)
            failed = False
        finally:
            try:  # nothing new starts; what has not started is cancelled on a stop
                pool.shutdown(wait=True, cancel_futures=failed or self.totals.stopped)
            finally:
                stopping.restore(previous)
            self._report_ready(outcomes)
        _raise_job_bug(in_flight)

    def _submit(
        self,
        owners: Iterable[services.Owner],
        pool: ThreadPoolExecutor,
        in_flight: set[Future[None]],
        clients: queue.SimpleQueue[CometChatClient],
        outcomes: queue.SimpleQueue[Outcome],
    ) -> None:
        """Start a job per owner, keeping at most two per thread in flight, until a stop."""
        for owner in owners:
            while len(in_flight) >= 2 * self.concurrency and not self.totals.stopped:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                in_flight -= done
                _raise_job_bug(done)
                self._report_ready(outcomes)
            if self.totals.stopped:
                return
            in_flight.add(pool.submit(self._lend, owner, clients, outcomes))
            self._report_ready(outcomes)

    def _lend(
        self,
        owner: services.Owner,
        clients: queue.SimpleQueue[CometChatClient],
        outcomes: queue.SimpleQueue[Outcome],
    ) -> None:
        """One job on a worker thread, with a client from the pool and fresh connections."""
        close_old_connections()
        client = clients.get()
        try:
            outcomes.put(self.job(owner, client))
        finally:
            clients.put(client)
            connections.close_all()  # this thread's connections only

    def _report_ready(self, outcomes: queue.SimpleQueue[Outcome]) -> None:
        while True:
            try:
                outcome = outcomes.get_nowait()
            except queue.Empty:
                return
            self._handle(outcome)

    def _interrupted(self, signum: int) -> None:
        stopping.stop(signum)  # the workers' syncs stop and record their runs failed
        if not self.totals.interrupted:
            self.totals.interrupted = True
            self.note(
                f"Interrupted ({signal.Signals(signum).name}): stopping the users in progress "
                "(their runs are recorded as failed); the rest are skipped."
            )


def _raise_job_bug(futures: Iterable[Future[None]]) -> None:
    """A bug in a job (not a failed sync, which is an outcome) is not swallowed."""
    for future in futures:
        if future.done() and not future.cancelled() and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
