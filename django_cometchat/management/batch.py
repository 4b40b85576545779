"""Run one job per owner, inline or on a thread pool, and stop early when it is pointless to go on.

``concurrent.futures.ThreadPoolExecutor`` does the threading: at most ``2 * concurrency`` jobs are
in flight, so an ``--all`` over a million users never queues them all; clients are lent from a
pool of ``concurrency``; each job closes its thread's database connections when it ends.

Stopping:

* Ctrl-C: nothing new starts, jobs still queued are cancelled, running ones finish (each page is
  its own transaction) and are reported; a second Ctrl-C does not abandon them.
* a failure that no later owner can escape (``scope == "global"``: a refused key, a missing
  setting, a plan restriction) stops the run at once;
* ``OUTAGE_LIMIT`` owners in a row failing with ``scope == "outage"`` (CometChat unreachable,
  failing or rate limiting past the retry budget) stop it too, instead of each waiting out its
  own retries for hours.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from django.db import close_old_connections, connections

from .. import services
from .reporting import Outcome

OUTAGE_LIMIT = 3

Job = Callable[[services.Owner, services.Client], Outcome]


@dataclass
class Stop:
    """Why a run ended early."""

    interrupted: bool = False
    reason: str = ""  # the failure that stopped it, for the closing message

    def __bool__(self) -> bool:
        return self.interrupted or bool(self.reason)


class BatchRunner:
    def __init__(
        self,
        job: Job,
        *,
        concurrency: int,
        report: Callable[[Outcome], None],
        note: Callable[[str], None],
    ) -> None:
        self.job = job
        self.concurrency = concurrency
        self.report = report
        self.note = note
        self.stop = Stop()
        self._outages = 0

    def run(self, owners: Iterable[services.Owner]) -> Stop:
        clients: queue.SimpleQueue[services.Client] = queue.SimpleQueue()
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
        return self.stop

    def _handle(self, outcome: Outcome) -> None:
        self.report(outcome)
        if outcome.interrupted:
            self.stop.interrupted = True
        elif outcome.ok or outcome.scope == "item":
            self._outages = 0
        elif outcome.scope == "global":
            self.stop.reason = self.stop.reason or outcome.reason
        else:
            self._outages += 1
            if self._outages >= OUTAGE_LIMIT and not self.stop.reason:
                self.stop.reason = f"{OUTAGE_LIMIT} owners in a row failed: {outcome.reason}"

    def _run_inline(self, owners: Iterable[services.Owner], client: services.Client) -> None:
        try:
            for owner in owners:
                self._handle(self.job(owner, client))
                if self.stop:
                    return
        except KeyboardInterrupt:  # between two owners
            self.stop.interrupted = True

    def _run_threaded(
        self, owners: Iterable[services.Owner], clients: queue.SimpleQueue[services.Client]
    ) -> None:
        def lend(owner: services.Owner) -> Outcome:
            close_old_connections()
            client = clients.get()
            try:
                return self.job(owner, client)
            finally:
                clients.put(client)
                connections.close_all()  # this thread's connections only

        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="cometchat_sync")
        in_flight: set[Future[Outcome]] = set()
        try:
            for owner in owners:
                while len(in_flight) >= 2 * self.concurrency and not self.stop:
                    in_flight = self._collect(in_flight, FIRST_COMPLETED)
                if self.stop:
                    break
                in_flight.add(pool.submit(lend, owner))
            if self.stop:
                pool.shutdown(wait=False, cancel_futures=True)
            while in_flight:
                in_flight = self._collect(in_flight, FIRST_COMPLETED)
        except KeyboardInterrupt:
            self.stop.interrupted = True
            self.note(
                "Interrupted: waiting for the users in progress to finish; the rest are skipped."
            )
            pool.shutdown(wait=False, cancel_futures=True)
            self._drain(in_flight)
        finally:
            pool.shutdown(wait=True)

    def _collect(self, futures: set[Future[Outcome]], when: str) -> set[Future[Outcome]]:
        done, pending = wait(futures, return_when=when)
        for future in done:
            if not future.cancelled():
                self._handle(future.result())
        return pending

    def _drain(self, futures: set[Future[Outcome]]) -> None:
        """Wait for the running jobs and report them; further Ctrl-Cs do not abandon them."""
        while futures:
            try:
                futures = self._collect(futures, FIRST_COMPLETED)
            except KeyboardInterrupt:
                continue
