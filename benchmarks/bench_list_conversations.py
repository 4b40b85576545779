"""List 50,000 conversations (50 pages of 1,000) from the fake server through the client.

Prints conversations/second, the client's peak memory and the TCP connections opened, for 10
and for 50 pages. Targets: one connection reused for all pages; peak memory flat as the page
count grows.

    python -m benchmarks.bench_list_conversations [--conversations 50000] [--per-page 1000]
        [--pages 10,50] [--repeat 3]

The fake server runs in a child process (``benchmarks.fake_server``) so that tracemalloc, which
traces every thread of a process, sees only the client side. Items are counted, never kept.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .support import (
    FakeServer,
    client_connections,
    configure_django,
    machine,
    mib,
    table,
    timed,
    traced_peak,
    within,
    yes_no,
)

OWNER = "owner"


@dataclass(frozen=True)
class Pass:
    pages: int
    conversations: int
    seconds: float
    requests: int
    connections_server: int  # accepted by the fake during the pass
    connections_client: int  # new connections made by the client's urllib3 pool


@dataclass(frozen=True)
class Result:
    pages: int
    best: Pass
    passes: tuple[Pass, ...]
    peak_bytes: int

    @property
    def per_second(self) -> float:
        return self.best.conversations / self.best.seconds


def list_pass(fake: FakeServer, *, pages: int, per_page: int) -> Pass:
    """One fresh client lists ``pages`` pages item by item, counting and dropping each."""
    from django_cometchat.client import CometChatClient

    before = fake.connections_opened()
    with CometChatClient() as client:

        def consume() -> int:
            items = client.list_conversations(on_behalf_of=OWNER, per_page=per_page)
            return sum(1 for _ in itertools.islice(items, pages * per_page))

        seconds, count = timed(consume)
        requests, made = client.request_count, client_connections(client)
    return Pass(pages, count, seconds, requests, fake.connections_opened() - before, made)


def traced_list(*, pages: int, per_page: int) -> int:
    """tracemalloc peak (bytes) of listing ``pages`` pages; only the iteration is traced."""
    from django_cometchat.client import CometChatClient

    with CometChatClient() as client:

        def consume() -> int:
            items = client.list_conversations(on_behalf_of=OWNER, per_page=per_page)
            return sum(1 for _ in itertools.islice(items, pages * per_page))

        peak, count = traced_peak(consume)
    assert count == pages * per_page, count
    return peak


def run(args: argparse.Namespace) -> list[Result]:
    results = []
    with FakeServer([(OWNER, args.conversations)]) as fake:
        configure_django(base_url=fake.base_url, database=None, page_size=args.per_page)
        list_pass(fake, pages=1, per_page=args.per_page)  # warm-up: imports, first connection
        for pages in args.pages:
            passes = tuple(
                list_pass(fake, pages=pages, per_page=args.per_page) for _ in range(args.repeat)
            )
            for p in passes:
                if p.conversations != pages * args.per_page:
                    raise SystemExit(
                        f"listed {p.conversations} conversations, expected {pages * args.per_page}"
                    )
            best = min(passes, key=lambda p: p.seconds)
            peak = traced_list(pages=pages, per_page=args.per_page)
            results.append(Result(pages, best, passes, peak))
    return results


def report(args: argparse.Namespace, results: Sequence[Result]) -> None:
    print("bench_list_conversations")
    print(f"machine: {machine()}")
    print(
        f"fake server: {args.conversations:,} conversations for {OWNER!r}, in a child process; "
        f"per_page={args.per_page}; best of {args.repeat} timed passes; "
        "peak memory from one extra pass under tracemalloc"
    )
    print()
    rows = [
        (
            r.pages,
            f"{r.best.conversations:,}",
            f"{r.best.seconds:.2f}",
            f"{r.per_second:,.0f}",
            mib(r.peak_bytes),
            r.best.requests,
            ", ".join(str(p.connections_server) for p in r.passes),
            ", ".join(str(p.connections_client) for p in r.passes),
        )
        for r in results
    ]
    print(
        table(
            (
                "pages",
                "conversations",
                "seconds",
                "conv/s",
                "peak (client)",
                "requests",
                "conns (fake, per pass)",
                "conns (client pool)",
            ),
            rows,
        )
    )
    print()
    one_connection = all(
        p.connections_server == 1 and p.connections_client == 1 and p.requests == r.pages
        for r in results
        for p in r.passes
    )
    print(
        f"one connection reused: {yes_no(one_connection)} "
        "(every pass: 1 connection accepted by the fake, 1 made by the client, "
        "1 request per page)"
    )
    if len(results) >= 2:
        # The pair when listed; otherwise the fewest against the most pages.
        by_pages = {r.pages: r for r in results}
        low, high = (
            (by_pages[10], by_pages[50])
            if {10, 50} <= by_pages.keys()
            else (results[0], results[-1])
        )
        flat = within(low.peak_bytes, high.peak_bytes, 0.25)
        print(
            f"peak memory {low.pages} vs {high.pages} pages: "
            f"{low.peak_bytes / 2**20:.1f} MiB vs {high.peak_bytes / 2**20:.1f} MiB "
            f"(flat: {yes_no(flat)}, within 25%)"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_list_conversations", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--conversations", type=int, default=50_000)
    parser.add_argument("--per-page", type=int, default=1000)
    parser.add_argument(
        "--pages",
        type=lambda v: sorted({int(x) for x in v.split(",")}),
        default=[10, 50],
        help="comma-separated page counts to list (default 10,50)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per page count")
    args = parser.parse_args(argv)
    if max(args.pages) * args.per_page > args.conversations:
        parser.error("--pages x --per-page exceeds --conversations")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report(args, run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
