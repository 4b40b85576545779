"""The fake CometChat server in its own process, so its memory and threads stay out of ours.

``python -m benchmarks.fake_server --api-key KEY --bulk owner=20000 --bulk small=5000`` binds a
free loopback port, seeds the bulk conversations, prints ``READY <base_url>`` and then answers a
line protocol on stdin: ``connections`` prints the number of TCP connections the fake accepted,
``requests`` the number of requests it answered; end of input stops it. This is how a benchmark
reads ``FakeCometChat.connections_opened`` across the process boundary.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from django_cometchat.testing import FakeCometChat


def _bulk_spec(value: str) -> tuple[str, int]:
    owner, _, count = value.partition("=")
    if not owner or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected OWNER=COUNT, got {value!r}")
    return owner, int(count)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fake_server")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--app-id", default="benchapp")
    parser.add_argument(
        "--bulk",
        type=_bulk_spec,
        action="append",
        default=[],
        metavar="OWNER=COUNT",
        help="give OWNER COUNT one-to-one conversations (repeatable)",
    )
    args = parser.parse_args(argv)

    fake = FakeCometChat(api_key=args.api_key, app_id=args.app_id, port=0)
    for index, (owner, count) in enumerate(args.bulk):
        fake.bulk_conversations(owner, count, prefix=f"peer{index}")
    with fake:
        print(f"READY {fake.base_url}", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "connections":
                print(fake.connections_opened, flush=True)
            elif command == "requests":
                print(len(fake.requests), flush=True)
            else:
                print(f"ERROR unknown command {command!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
