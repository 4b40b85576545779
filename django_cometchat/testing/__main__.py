"""Run the fake CometChat server stand-alone: ``python -m django_cometchat.testing``.

Example::

    python -m django_cometchat.testing --port 8765 --seed demo

then point ``COMETCHAT["BASE_URL"]`` (or ``$COMETCHAT_BASE_URL``) at the printed URL. The UIDs
and GUIDs that ``--seed demo`` and ``--bulk`` created are printed too, to map Django users to.
The API key comes from ``--api-key``, else ``$COMETCHAT_FAKE_API_KEY``, else the dev key
``fake-dev-key``; a key you supplied is never printed. Stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Sequence
from types import FrameType

from .options import COMPRESSIONS, MESSAGES_METAS
from .ratelimit import HEADER_STYLES
from .server import FakeCometChat

DEV_API_KEY = "fake-dev-key"
API_KEY_ENV = "COMETCHAT_FAKE_API_KEY"


def build_parser() -> argparse.ArgumentParser:
    # Every option's help says its default.
    parser = argparse.ArgumentParser(
        prog="python -m django_cometchat.testing",
        description="Serve a fake CometChat REST v3 API on loopback.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port, 0 for any free one (default: %(default)s)"
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"key to accept (default: ${API_KEY_ENV}, else the dev key {DEV_API_KEY!r})",
    )
    parser.add_argument(
        "--app-id", default="testapp", help="the app id it answers as (default: %(default)s)"
    )
    parser.add_argument(
        "--seed",
        choices=("none", "demo"),
        default="none",
        help="data to start with (default: %(default)s)",
    )
    parser.add_argument(
        "--bulk-owner", default=None, help="UID that gets --bulk conversations (default: none)"
    )
    parser.add_argument(
        "--bulk", type=int, default=0, help="number of bulk conversations (default: %(default)s)"
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        help="requests per minute (default: no limit)",
    )
    parser.add_argument(
        "--header-style",
        choices=HEADER_STYLES,
        default="hyphen",
        help="how the rate-limit headers are spelled (default: %(default)s)",
    )
    parser.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default="gzip",
        help="how JSON answers are compressed when the client accepts it (default: %(default)s)",
    )
    parser.add_argument(
        "--messages-meta",
        choices=MESSAGES_METAS,
        default="next",
        help="the message lists' meta: next (API.md §4.3) or cursor (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bulk and not args.bulk_owner:
        build_parser().error("--bulk needs --bulk-owner")
    if args.api_key:
        api_key, key_source = args.api_key, "the value passed with --api-key"
    elif os.environ.get(API_KEY_ENV):
        api_key, key_source = os.environ[API_KEY_ENV], f"${API_KEY_ENV}"
    else:
        api_key, key_source = DEV_API_KEY, f"{DEV_API_KEY} (the default dev key)"

    fake = FakeCometChat(
        api_key=api_key,
        app_id=args.app_id,
        host=args.host,
        port=args.port,
        rate_limit_per_minute=args.rate_limit,
        header_style=args.header_style,
        compression=args.compression,
        messages_meta=args.messages_meta,
    )
    seeded = fake.seed_demo() if args.seed == "demo" else None
    bulk = (
        fake.bulk_conversations(args.bulk_owner, args.bulk) if args.bulk_owner and args.bulk else []
    )

    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    # Explicit handlers: a shell starting us in the background may have SIGINT ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        fake.start()
    except OSError as error:
        print(f"Cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 2
    try:
        print(f"Fake CometChat REST API at {fake.base_url}", flush=True)
        print(f"API key: {key_source}", flush=True)
        print(f"App ID: {fake.app_id}; Ctrl-C stops.", flush=True)
        if seeded is not None:  # the names to map Django users to
            print(_listing(f"Demo users ({len(seeded.uids)} UIDs)", seeded.uids), flush=True)
            print(_listing(f"Demo groups ({len(seeded.guids)} GUIDs)", seeded.guids), flush=True)
        if bulk:
            owner = args.bulk_owner.lower()
            print(
                f"Bulk: {owner} has {len(bulk)} conversations, with {bulk[0]} to {bulk[-1]}",
                flush=True,
            )
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    print("Stopped.", file=sys.stderr, flush=True)
    return 0


def _listing(label: str, names: Sequence[str]) -> str:
    """``label: a, b, c`` wrapped for a terminal, continuation lines indented."""
    return textwrap.fill(
        f"{label}: {', '.join(names) or '(none)'}",
        width=100,
        subsequent_indent="    ",
        break_on_hyphens=False,
        break_long_words=False,
    )


if __name__ == "__main__":
    sys.exit(main())
