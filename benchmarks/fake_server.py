"""The fake CometChat server in its own process, so its memory and threads stay out of ours.

``python -m benchmarks.fake_server --api-key KEY --bulk owner=20000 --bulk small=5000`` binds a
free loopback port, seeds the bulk conversations, prints ``READY <base_url>`` and then answers a
line protocol on stdin: ``connections`` prints the number of TCP connections the fake accepted,
``requests`` the number of requests it answered; end of input stops it. This is how a benchmark
reads ``FakeCometChat.connections_opened`` across the process boundary.

For the fan-out benchmark: ``--owners 2000 --conversations 50`` seeds owners ``owner-0001`` … each
with that many conversations, ``--delay 0.05`` adds 50 ms to every answer (a ``delay`` fault
that never runs out), ``--rate-limit N`` is CometChat's per-minute limit (429 beyond it); the
commands ``log`` (one JSON line: ``[[at, status], …]`` of every request since the last
``clear``), ``clear`` (forget the request log; prints 0) and ``cpu`` (seconds of CPU this
process has used) report what it saw.

For the messages benchmark: ``--messages 250`` seeds users ``alice`` and ``bob``, the group
``crew`` of both, and that many messages in their one-to-one conversation and in the group.

For the freshness benchmark: ``send SENDER RECEIVER`` makes a real upstream change (SENDER sends
RECEIVER a text message, which becomes both users' conversation's last message) and prints the
body of the ``message_sent`` webhook CometChat would deliver for it (``API.md`` §7), one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from django_cometchat.testing import FakeCometChat, Fault
from django_cometchat.testing.render import dumps

FOREVER = 10**12  # a fault's ``times`` that never runs out


def owner_uids(count: int) -> list[str]:
    """The UIDs ``--owners`` seeds: ``owner-0001`` …"""
    width = max(4, len(str(count)))
    return [f"owner-{n:0{width}d}" for n in range(1, count + 1)]


def message_sent(fake: FakeCometChat, sender: str, receiver: str) -> dict[str, object]:
    """Send a message in the fake; the ``message_sent`` webhook body announcing it."""
    message = fake.send_message(sender, to_user=receiver, text="fresh?")
    return {
        "trigger": "message_sent",
        "appId": fake.app_id,
        "region": "us",
        "webhook": "benchmark",
        "data": {"message": message},
    }


def seed_messages(fake: FakeCometChat, count: int) -> None:
    """alice and bob, the group "crew" of both, ``count`` messages in each conversation."""
    for uid in ("alice", "bob"):
        fake.add_user(uid)
    fake.add_group("crew", members=["alice", "bob"])
    fake.add_messages("bob", count, to_user="alice")
    fake.add_messages("alice", count, to_group="crew")


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
    parser.add_argument("--owners", type=int, default=0, help="seed owner-0001 … owner-N")
    parser.add_argument(
        "--conversations", type=int, default=50, help="conversations of each --owners owner"
    )
    parser.add_argument(
        "--messages", type=int, default=0, help="messages of alice_user_bob and group_crew"
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute")
    args = parser.parse_args(argv)

    fake = FakeCometChat(
        api_key=args.api_key, app_id=args.app_id, port=0, rate_limit_per_minute=args.rate_limit
    )
    for index, (owner, count) in enumerate(args.bulk):
        fake.bulk_conversations(owner, count, prefix=f"peer{index}")
    for uid in owner_uids(args.owners):
        fake.bulk_conversations(uid, args.conversations, prefix=f"{uid}-peer")
    if args.messages:
        seed_messages(fake, args.messages)
    if args.delay > 0:
        fake.inject(Fault("delay", delay=args.delay, times=FOREVER))
    with fake:
        print(f"READY {fake.base_url}", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "connections":
                print(fake.connections_opened, flush=True)
            elif command == "requests":
                print(len(fake.requests), flush=True)
            elif command == "log":
                log = [[r.at, r.status] for r in fake.requests]
                print(json.dumps(log, separators=(",", ":")), flush=True)
            elif command == "clear":
                fake.clear_requests()
                print(0, flush=True)
            elif command.startswith("send "):
                print(dumps(message_sent(fake, *command.split()[1:])), flush=True)
            elif command == "cpu":
                times = os.times()
                print(times.user + times.system, flush=True)
            else:
                print(f"ERROR unknown command {command!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
