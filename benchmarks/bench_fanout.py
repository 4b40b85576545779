"""Fan-out: one sync task per owner through the task queue, run by 1, 2 and 4 worker processes.

The queue is django-tasks-db's (a table of PostgreSQL, a fresh database ``cometchat_bench_fanout``
on 127.0.0.1:5432), run by its ``db_worker`` command in worker processes started here. The fake
CometChat runs in a child process: ``--owners`` owners (``owner-0001`` …) with
``--conversations`` conversations each, ``--delay`` seconds added to every answer. The rate
budget (``REQUESTS_PER_MINUTE``, ``RATE_LIMIT_WINDOW`` 60) is counted in Redis, shared by the
workers as in production.

Two parts:

1. **Speed-up**: the budget at 20,000 a minute (CometChat's standard limit; it never binds here),
   ``--owners`` syncs with each worker count of ``--workers``. Target: 4 workers at least 3.5x
   one worker.
2. **Budget**: 4 workers, ``REQUESTS_PER_MINUTE`` at ``--budget`` (default 450, the package's
   default: 90% of the 500 a minute of CometChat's free plan, which the fake then enforces with
   429s: ``--plan-limit``) and ``--budget-owners`` syncs (default 2,000: four and a half minutes
   at 450 a minute), so that whole calendar minutes fall inside the run. Targets: every whole
   minute uses at least 90% of the budget, and no minute exceeds it (the fake counts what
   arrives per calendar minute, as CometChat does).

Per run: owners per second, the peak per-minute request count the fake saw against the budget,
429s, and CPU time per sync of the workers, of their PostgreSQL backends and of the fake (read
from /proc), with the whole machine's busy time, to tell latency-bound from CPU-bound.

    python -m benchmarks.bench_fanout [--owners 2000] [--conversations 50] [--workers 1,2,4]
        [--delay 0.05] [--budget 450] [--plan-limit 500] [--budget-owners 2000]
        [--no-budget-run] [--no-speedup-run] [--profile N] [--redis-url redis://127.0.0.1:6379/6]

The Redis database of ``--redis-url`` is flushed before each run: give it one nobody else uses.
Exits 0 whatever the figures (a report); 1 when a task, a sync or a worker failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import processes
from .processes import (
    WORKER_READY,
    Child,
    ChildDied,
    CpuMeter,
    check_alive,
)
from .support import (
    Database,
    FakeServer,
    configure_django,
    machine,
    pass_miss,
    postgres_database,
    queue_settings,
    table,
)

DB_NAME = "cometchat_bench_fanout"
UNBOUND_BUDGET = 20_000  # CometChat's standard operations limit per minute (API.md §5.4)
WINDOW = 60.0
PROFILES: list[str] = []  # printed after the report


# -- settings, shared by this process and the workers ------------------------------------------


@dataclass(frozen=True)
class Config:
    base_url: str
    database: dict[str, Any]
    redis_url: str
    budget: int
    profile_dir: str | None = None  # workers write a cProfile of themselves there

    def configure(self, *, migrate: bool) -> None:
        configure_django(
            base_url=self.base_url,
            database=Database("postgres", self.database, ""),
            apps=["django_tasks_db"],
            cometchat={
                "REQUESTS_PER_MINUTE": self.budget,
                "RATE_LIMIT_WINDOW": WINDOW,
                "RATE_LIMIT_CACHE": "cometchat",
            },
            extra={
                **queue_settings(self.redis_url),
            },
            migrate=migrate,
        )


def run_worker(name: str) -> int:
    """A worker process: the benchmark's settings, then django-tasks-db's ``db_worker``."""
    config = Config(**processes.config_from_env())
    config.configure(migrate=False)
    profile = os.path.join(config.profile_dir, f"{name}.prof") if config.profile_dir else None
    return processes.run_db_worker(name, interval=0.1, profile_path=profile)


# -- one run ------------------------------------------------------------------------------------


def start_workers(config: Config, count: int, logs: Path) -> list[Child]:
    roles = [
        (f"fanout-{count}-{n}", ["--worker", f"fanout-{count}-{n}"]) for n in range(1, count + 1)
    ]
    return processes.start(
        "benchmarks.bench_fanout", roles, config=config.__dict__, logs=logs, ready=WORKER_READY
    )


def empty_tables() -> None:
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from django_cometchat.models import Conversation, ConversationSnapshot, SyncRun

    tables = [m._meta.db_table for m in (ConversationSnapshot, Conversation, SyncRun)]
    tables.append(DBTaskResult._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)}")


@dataclass
class Run:
    label: str
    workers: int
    owners: int
    budget: int
    seconds: float
    requests: list[tuple[float, int | None]]
    started: float
    finished: float
    cpu: dict[str, float]
    failed_tasks: int
    failed_syncs: int
    per_worker: dict[str, int]
    enqueued: float = 0.0  # seconds from the start to the enqueue's commit
    first_task: float = 0.0  # when the first task started (epoch seconds)

    @property
    def rate(self) -> float:
        return self.owners / self.seconds

    @property
    def workers_rate(self) -> float:
        """Owners a second over the workers' own span: the first task's start to the last's
        end (the enqueue's transaction, which they wait for, left out)."""
        return self.owners / (self.finished - self.first_task)

    def windows(self) -> Counter[int]:
        return Counter(math.floor(at / WINDOW) for at, _ in self.requests)

    def whole_windows(self) -> list[int]:
        """Request counts of the calendar minutes that lie wholly inside the run."""
        first = math.ceil(self.started / WINDOW)
        last = math.floor(self.finished / WINDOW)  # exclusive
        counts = self.windows()
        return [counts[w] for w in range(first, last)]

    @property
    def peak_minute(self) -> int:
        return max(self.windows().values(), default=0)

    @property
    def throttled(self) -> int:
        return sum(1 for _, status in self.requests if status == 429)

    def cpu_ms(self, key: str) -> float:
        return 1000 * self.cpu.get(key, 0.0) / self.owners

    @property
    def ours_ms(self) -> float:
        return sum(self.cpu_ms(key) for key in ("workers", "postgres", "fake"))

    @property
    def others_cores(self) -> float:
        ours = sum(self.cpu.get(key, 0.0) for key in ("workers", "postgres", "fake"))
        return max(self.cpu.get("machine", 0.0) - ours, 0.0) / self.seconds


def one_run(
    label: str, config: Config, fake: FakeServer, *, uids: list[str], workers: int, logs: Path
) -> Run:
    import redis
    from django.db import transaction
    from django.db.models import Max, Min
    from django_tasks_db.models import DBTaskResult

    from django_cometchat import services, tasks
    from django_cometchat.models import SyncRun

    empty_tables()
    redis.Redis.from_url(config.redis_url).flushdb()  # a fresh budget
    fake.clear_requests()
    pool = start_workers(config, workers, logs)
    try:
        meter = CpuMeter({"workers": [w.process.pid for w in pool]}, fake.cpu_seconds, DB_NAME)
        meter.start()
        started = time.time()
        with transaction.atomic():  # the workers see all the tasks at once
            enqueued = tasks.enqueue_syncs(services.owners(uids=uids)).succeeded
        committed = time.time() - started
        assert enqueued == len(uids), enqueued
        timeout = max(900.0, 3 * 60 * len(uids) / config.budget)
        done = DBTaskResult.objects.filter(status__in=["SUCCESSFUL", "FAILED"])
        while done.count() < len(uids):
            check_alive(pool)
            if time.time() - started > timeout:
                raise ChildDied(f"{label}: not drained in {timeout:.0f} s")
            time.sleep(0.5)
        cpu = meter.stop()
        span = DBTaskResult.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
        first_task, finished = span["first"].timestamp(), span["last"].timestamp()
        per_worker = Counter(
            (r.worker_ids or ["?"])[-1] for r in DBTaskResult.objects.only("worker_ids")
        )
        failed_tasks = DBTaskResult.objects.filter(status="FAILED").count()
        failed_syncs = SyncRun.objects.exclude(status="succeeded").count()
    finally:
        processes.stop_all(pool)
    return Run(
        label=label,
        workers=workers,
        owners=len(uids),
        budget=config.budget,
        seconds=finished - started,
        requests=fake.request_log(),
        started=started,
        finished=finished,
        cpu=cpu,
        failed_tasks=failed_tasks,
        enqueued=committed,
        first_task=first_task,
        failed_syncs=failed_syncs,
        per_worker=dict(per_worker),
    )


# -- report -------------------------------------------------------------------------------------


def report(runs: list[Run], delay: float) -> None:
    base = next((r for r in runs if r.workers == 1 and r.budget == UNBOUND_BUDGET), None)
    rows = []
    for run in runs:
        speedup = f"{run.rate / base.rate:.2f}x" if base and run.budget == base.budget else "-"
        rows.append(
            [
                run.label,
                run.workers,
                f"{run.owners:,}",
                f"{run.seconds:.1f}",
                f"{run.rate:.1f}",
                speedup,
                f"{len(run.requests):,}",
                f"{run.peak_minute:,} / {run.budget:,} ({run.peak_minute / run.budget:.0%})",
                f"{60 * len(run.requests) / run.seconds:,.0f}",
                run.throttled,
            ]
        )
    print(
        table(
            [
                "run",
                "workers",
                "owners",
                "seconds",
                "owners/s",
                "vs 1",
                "requests",
                "peak minute / budget",
                "avg req/min",
                "429s",
            ],
            rows,
        )
    )
    print()
    print(
        table(
            [
                "run",
                "workers",
                "CPU ms/sync: workers",
                "postgres",
                "fake",
                "ours",
                "other processes (cores)",
                "wall ms/sync/worker",
                "syncs per worker",
            ],
            [
                [
                    run.label,
                    run.workers,
                    f"{run.cpu_ms('workers'):.1f}",
                    f"{run.cpu_ms('postgres'):.1f}",
                    f"{run.cpu_ms('fake'):.1f}",
                    f"{run.ours_ms:.1f}",
                    f"{run.others_cores:.2f}",
                    f"{1000 * run.seconds * run.workers / run.owners:.1f}",
                    ", ".join(str(n) for _, n in sorted(run.per_worker.items())),
                ]
                for run in runs
            ],
        )
    )
    print(
        "(ours: the workers, their PostgreSQL backends and the fake; other processes: the "
        "machine's busy time beyond ours, in cores on average, e.g. other people's tests)"
    )
    print()
    failures = [r for r in runs if r.failed_tasks or r.failed_syncs]
    for run in failures:
        print(f"[{run.label}] FAILED: {run.failed_tasks} tasks, {run.failed_syncs} syncs")
    four = next((r for r in runs if r.workers == 4 and r.budget == UNBOUND_BUDGET), None)
    if base and four:
        ratio = four.rate / base.rate
        print(f"4 workers vs 1: {ratio:.2f}x (target >= 3.5x) {pass_miss(ratio >= 3.5)}")
        print(
            f"  the workers' own span (first task started to last finished; the enqueue's "
            f"transaction, {base.enqueued:.1f} s and {four.enqueued:.1f} s, left out): "
            f"{four.workers_rate / base.workers_rate:.2f}x ({base.workers_rate:.1f} vs "
            f"{four.workers_rate:.1f} owners/s)"
        )
        cores = os.cpu_count() or 1
        print(
            f"  one worker: {1000 / base.rate:.1f} ms per sync, {1000 * delay:.0f} ms of it the "
            f"fake's added latency; CPU per sync {base.ours_ms:.1f} ms "
            f"({base.cpu_ms('workers'):.1f} worker, {base.cpu_ms('postgres'):.1f} PostgreSQL, "
            f"{base.cpu_ms('fake'):.1f} fake)"
        )
        print(f"  4 workers waiting on latency alone: {4 * base.rate:.1f} owners/s")
        for run in (base, four):
            ours = run.ours_ms * run.rate / 1000
            left = max(cores - run.others_cores, 0.0)
            print(
                f"  {run.label}: the machine {100 * (ours + run.others_cores) / cores:.0f}% "
                f"busy (ours {ours:.2f} cores, other processes {run.others_cores:.2f} of "
                f"{cores}); CPU ceiling at {run.ours_ms:.1f} ms per sync: "
                f"{1000 * cores / run.ours_ms:.1f} owners/s with all {cores} cores, "
                f"{1000 * left / run.ours_ms:.1f}/s with the {left:.2f} others left"
            )
    for run in runs:
        if run.budget == UNBOUND_BUDGET:
            continue
        whole = run.whole_windows()
        exceeded = max(run.windows().values(), default=0) > run.budget
        minutes = [n for _, n in sorted(run.windows().items())]
        print(
            f"[{run.label}] requests per calendar minute: {minutes} (the first and last are "
            f"partial); whole minutes: {whole}; budget {run.budget}; 429s: {run.throttled}"
        )
        if whole:
            used = min(whole) / run.budget
            print(f"  budget used: {used:.1%} at least (target >= 90%) {pass_miss(used >= 0.9)}")
        else:
            print("  budget used: no whole minute inside the run (raise --budget-owners) MISS")
        print(
            f"  never exceeded: peak {run.peak_minute} of {run.budget} "
            f"{pass_miss(not exceeded and run.throttled == 0)}"
        )


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_fanout",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--owners", type=int, default=2000)
    parser.add_argument("--conversations", type=int, default=50, help="per owner")
    parser.add_argument("--workers", default="1,2,4", help="worker counts of the speed-up runs")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds added per request")
    parser.add_argument("--budget", type=int, default=450, help="REQUESTS_PER_MINUTE, part 2")
    parser.add_argument(
        "--plan-limit", type=int, default=500, help="the fake's per-minute limit, part 2"
    )
    parser.add_argument("--budget-owners", type=int, default=2000, help="owners of part 2")
    parser.add_argument("--no-budget-run", action="store_true", help="skip part 2")
    parser.add_argument("--no-speedup-run", action="store_true", help="skip part 1")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after part 1, run one worker under cProfile over N owners and print where its "
        "time goes (not part of the figures)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


Part = tuple[str, int, int, list[int]]  # label, owners, budget, worker counts


def run_part(
    part: Part, args: argparse.Namespace, database: Database, logs: Path, *, first: bool
) -> list[Run]:
    """The runs of one part, against a fake of their own (part 2's enforces the plan's limit)."""
    from .fake_server import owner_uids

    label, owners, budget, worker_counts = part
    options = ["--owners", str(owners), "--conversations", str(args.conversations)]
    options += ["--delay", str(args.delay)]
    if budget != UNBOUND_BUDGET:
        options += ["--rate-limit", str(args.plan_limit)]
    runs = []
    with FakeServer([], options=options, start_timeout=300) as fake:
        config = Config(fake.base_url, database.settings, args.redis_url, budget)
        if first:  # this process's settings: any part's will do, it sends no request
            config.configure(migrate=True)
        uids = owner_uids(owners)
        for workers in worker_counts:
            name = f"{label}, {workers} worker{'s' if workers > 1 else ''}"
            print(f"running: {name}, {owners:,} owners …", flush=True)
            run = one_run(name, config, fake, uids=uids, workers=workers, logs=logs)
            print(f"  {run.seconds:.1f} s, {run.rate:.1f} owners/s", flush=True)
            runs.append(run)
        if args.profile and budget == UNBOUND_BUDGET:
            profile_worker(config, fake, uids[: args.profile], logs)
    return runs


def profile_worker(config: Config, fake: FakeServer, uids: list[str], logs: Path) -> None:
    """One worker under cProfile, apart from the measured runs: where a sync's CPU goes."""
    print(f"profiling: 1 worker, {len(uids):,} owners …", flush=True)
    profiled = dataclasses.replace(config, profile_dir=str(logs))
    one_run("profile", profiled, fake, uids=uids, workers=1, logs=logs)
    out = io.StringIO()
    if os.environ.get("BENCH_PROFILE_SAVE"):  # keep the raw profile for pstats/snakeviz
        shutil.copy(logs / "fanout-1-1.prof", os.environ["BENCH_PROFILE_SAVE"])
    stats = pstats.Stats(str(logs / "fanout-1-1.prof"), stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    PROFILES.append(f"cProfile of one worker over {len(uids):,} syncs\n{out.getvalue()}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker)
    counts = [int(n) for n in args.workers.split(",") if n]
    parts: list[Part] = []
    if not args.no_speedup_run:
        parts.append(("speed-up", args.owners, UNBOUND_BUDGET, counts))
    if not args.no_budget_run:
        parts.append(("budget", args.budget_owners, args.budget, [4]))

    import django

    print("bench_fanout")
    print(f"machine: {machine()}")
    print(
        f"queue: django-tasks-db's db_worker on PostgreSQL ({DB_NAME}), worker processes "
        f"started here; fake CometChat in a child process: {args.conversations} conversations "
        f"per owner, one page each, +{1000 * args.delay:.0f} ms per request; rate budget in "
        f"Redis ({args.redis_url}), RATE_LIMIT_WINDOW {WINDOW:.0f}; Django {django.get_version()}"
    )
    sys.stdout.flush()
    database = postgres_database(DB_NAME)
    database.settings["CONN_MAX_AGE"] = 600  # a worker keeps its connection between tasks
    runs: list[Run] = []
    status = 0
    try:
        with tempfile.TemporaryDirectory(prefix="cometchat-fanout-") as logs:
            for part in parts:
                runs += run_part(part, args, database, Path(logs), first=not runs)
    except ChildDied as exc:
        print(f"a worker failed: {exc}")
        status = 1
    finally:
        database.cleanup()
    print()
    report(runs, args.delay)
    for text in PROFILES:
        print()
        print(text)
    if any(r.failed_tasks or r.failed_syncs for r in runs):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
