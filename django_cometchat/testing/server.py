"""A fake CometChat REST v3 server over real HTTP on loopback, for tests and local development.

::

    with FakeCometChat() as fake:
        fake.add_user("alice")
        fake.add_user("bob")
        fake.send_message("bob", to_user="alice", text="hi")
        requests.get(f"{fake.base_url}/conversations",
                     headers={"apikey": fake.api_key, "onBehalfOf": "alice"})

:class:`FakeCometChat` is the front: lifecycle, options, data, faults and the request log. What
it answers is decided in :mod:`.answer` (faults, authentication, rate limit, routing) and
written to the socket by :mod:`.transport`. Each request is appended to
:attr:`FakeCometChat.requests` before its answer is written, so a client that has its response
can already see it logged.

Stdlib only (``http.server``); no Django.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from . import seed
from .answer import Request, Responder
from .faults import (
    Fault,
    FaultQueue,
)
from .messages import add_message
from .options import FakeOptions, OptionChanges
from .ratelimit import RateLimiter, header_names
from .render import group_json, message_json, user_json
from .state import JSON, State, direct_conversation_id, group_conversation_id
from .transport import Hangup, LoopbackServer, Reply

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

DEFAULT_API_KEY = "test-api-key-not-secret"
DEFAULT_APP_ID = "testapp"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received.

    ``path`` is the path as sent (percent-encoded, with the ``/v3`` prefix, without the query);
    ``headers`` has lowercased names; ``status`` is None when a "drop" or "reset" fault hung up;
    ``at`` is ``time.time()`` when the request was received, the moment the rate limit counts it
    at (bucket the log by ``at // window`` to see the limiter's windows).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int | None
    body: bytes = b""
    at: float = 0.0


def _changed(options: FakeOptions, changes: Mapping[str, Any]) -> FakeOptions:
    """``options`` with ``changes``; TypeError names an option that does not exist."""
    known = {f.name for f in fields(FakeOptions)}
    unknown = sorted(set(changes) - known)
    if unknown:
        names = ", ".join(sorted(known))
        raise TypeError(f"unknown FakeCometChat option {unknown[0]!r}; the options are {names}")
    return replace(options, **changes)


def _deprecated(old: str, instead: str) -> None:
    warnings.warn(
        f"FakeCometChat.{old} is deprecated; use {instead}",
        DeprecationWarning,
        stacklevel=3,
    )


class _DeprecatedOption:
    """``fake.<option>`` read or assigned: the old spelling of ``fake.options.<option>`` and
    ``fake.configure(<option>=...)``, with a DeprecationWarning."""

    name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, fake: FakeCometChat | None, owner: type | None = None) -> Any:
        if fake is None:
            return self
        _deprecated(self.name, f"fake.options.{self.name}")
        return getattr(fake.options, self.name)

    def __set__(self, fake: FakeCometChat, value: Any) -> None:
        _deprecated(f"{self.name} = ...", f"fake.configure({self.name}=...)")
        fake.configure(**{self.name: value})


class FakeCometChat:
    """A CometChat REST v3 look-alike on ``http://127.0.0.1:<port>/v3``.

    Use it as a context manager or call :meth:`start` / :meth:`stop`. ``port=0`` picks a free
    port. Data is added with :meth:`add_user`, :meth:`add_group`, :meth:`send_message`, …;
    failures with :meth:`inject` and the ``*_next`` helpers.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        app_id: str = DEFAULT_APP_ID,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Unpack[OptionChanges],
    ) -> None:
        """``options`` are those of :meth:`configure`; :meth:`reset` goes back to them."""
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.api_key = api_key
        self.app_id = app_id
        self.host = host
        self.port = port
        # reset() goes back to these; each change swaps in a modified copy.
        self._defaults = _changed(FakeOptions(), options)
        self._options = replace(self._defaults)
        self.state = State()
        self._limiter = RateLimiter(
            self._defaults.rate_limit_per_minute, window=self._defaults.rate_limit_window
        )
        self._faults = FaultQueue()
        self._responder = Responder(self.state, self._limiter, self._faults)
        self._log_lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._generation = 0  # bumped by reset(); see _answer
        self._connections = 0
        self._open_sockets: set[socket.socket] = set()
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeCometChat:
        if self._server is not None:
            raise RuntimeError("the fake CometChat server is already running")
        server = LoopbackServer((self.host, self.port), self)
        self.port = server.server_port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeCometChat:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._log_lock:
            open_sockets = list(self._open_sockets)
        for sock in open_sockets:  # wake keep-alive handler threads so they exit
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeCometChat:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("start the fake CometChat server first (start() or `with`)")
        return f"http://{self.host}:{self.port}/v3"

    def __repr__(self) -> str:  # never shows the API key
        where = f"http://{self.host}:{self.port}/v3" if self.running else "stopped"
        return f"<FakeCometChat {where}>"

    def reset(self) -> None:
        """Forget all data, faults, logged requests and connection counts; restore the options."""
        self.state.reset()
        self._faults.clear()
        self._responder.release_held()
        self._options = options = replace(self._defaults)
        self._limiter.configure(options.rate_limit_per_minute, window=options.rate_limit_window)
        with self._log_lock:
            self._requests.clear()
            self._connections = 0
            self._generation += 1

    # -- options -------------------------------------------------------------------------------

    def configure(self, **options: Unpack[OptionChanges]) -> FakeOptions:
        """Change some of the fake's options, validated together; returns the new options.

        The options (defaults in brackets; see ``docs/testing.md``): ``rate_limit_per_minute``
        [None: no budget] and ``rate_limit_window`` [60.0] (the budget is counted afresh when
        either is given), ``header_style`` ["hyphen"|"compact"|"both"], ``reset_header``
        ["429"|"always"], ``single_as_list`` [True], ``not_accessible_status`` [403],
        ``pagination_mode`` ["exact"|"lookahead"], ``omit_pagination_keys`` [()],
        ``compression`` ["gzip"|"deflate"|"off"], ``messages_meta`` ["next"|"cursor"],
        ``messages_limit_above_max`` ["reject"|"clamp"]. An unknown name raises ``TypeError``,
        a bad value ``ValueError``, and nothing changes. :meth:`reset` restores the
        constructor's options.
        """
        current = self._options
        updated = _changed(current, options)
        if {"rate_limit_per_minute", "rate_limit_window"} & options.keys():
            self._limiter.configure(updated.rate_limit_per_minute, window=updated.rate_limit_window)
        self._options = updated
        return updated

    @property
    def options(self) -> FakeOptions:
        """The current options (frozen; change them with :meth:`configure`)."""
        return self._options

    # Deprecated spellings, kept because host projects' tests use them.
    header_style = _DeprecatedOption()
    reset_header = _DeprecatedOption()
    single_as_list = _DeprecatedOption()
    not_accessible_status = _DeprecatedOption()
    pagination_mode = _DeprecatedOption()
    omit_pagination_keys = _DeprecatedOption()
    compression = _DeprecatedOption()

    def set_rate_limit(self, per_minute: int | None, *, window: float | None = None) -> None:
        """Deprecated: ``configure(rate_limit_per_minute=..., rate_limit_window=...)``."""
        _deprecated(
            "set_rate_limit(n, window=w)",
            "fake.configure(rate_limit_per_minute=n, rate_limit_window=w)",
        )
        changes: dict[str, Any] = {"rate_limit_per_minute": per_minute}
        if window is not None:
            changes["rate_limit_window"] = window
        self.configure(**changes)

    # -- data ----------------------------------------------------------------------------------

    def add_user(self, uid: str, name: str | None = None, **extra_fields: Any) -> JSON:
        """Add a user (UID lowercased); extra fields (``status``, ``role``, ``metadata``,
        ``link``, ``tags``…) go into its JSON. Returns the user object."""
        return user_json(self.state.add_user(uid, name, **extra_fields))

    def update_user(self, uid: str, **changes: Any) -> JSON:
        return user_json(self.state.update_user(uid, **changes))

    def deactivate_user(self, uid: str) -> None:
        self.state.deactivate_user(uid)

    def add_group(
        self,
        guid: str,
        name: str | None = None,
        *,
        members: Iterable[str | tuple[str, str]] = (),
        group_type: str = "public",
        **extra: Any,
    ) -> JSON:
        """Add a group; ``members`` are UIDs or (UID, scope) pairs; the first member (or
        ``owner=``) owns it as admin."""
        group = self.state.add_group(guid, name, members=members, group_type=group_type, **extra)
        return group_json(group, None)

    def add_member(self, guid: str, uid: str, scope: str = "participant") -> None:
        self.state.add_member(guid, uid, scope)

    def remove_member(self, guid: str, uid: str) -> None:
        """``uid`` is no longer a member (kicked, banned or left): the group conversation drops
        out of their list, and fetching it on their behalf answers
        ``ERR_CONVERSATION_NOT_ACCESSIBLE`` (status ``not_accessible_status``)."""
        self.state.remove_member(guid, uid)

    def delete_group(self, guid: str) -> None:
        """Delete the group: its conversation is gone for every member, and
        ``GET /groups/{guid}/conversation`` answers 404 ``ERR_GUID_NOT_FOUND``."""
        self.state.delete_group(guid)

    def send_message(
        self,
        sender_uid: str,
        *,
        to_user: str | None = None,
        to_group: str | None = None,
        text: str = "hi",
        sent_at: int | None = None,
    ) -> JSON:
        """Send a text message; returns the full message object. Without ``sent_at`` the time
        comes from a clock that always moves forward, so later messages sort newer."""
        with self.state.lock:
            message = self.state.send_message(
                sender_uid, to_user=to_user, to_group=to_group, text=text, sent_at=sent_at
            )
            return message_json(self.state, message)

    def add_message(
        self,
        sender_uid: str,
        *,
        to_user: str | None = None,
        to_group: str | None = None,
        text: str | None = "hi",
        **shape: Any,
    ) -> JSON:
        """Add one message of any shape API.md §4.3 lists; returns the message object as the
        message lists render it. ``shape`` takes ``type``, ``category``, ``sent_at``,
        ``attachments`` (dicts with ``url`` and optionally ``name``, ``extension``,
        ``mimeType``, ``size``), ``metadata``, ``edited_at``, ``deleted_at`` (the message keeps
        its place, without text or attachments), and for ``category="action"`` an ``action``
        (``joined``, ``kicked``, ``edited``… ) with ``on`` (the UID acted on)."""
        with self.state.lock:
            record = add_message(
                self.state, sender_uid, to_user=to_user, to_group=to_group, text=text, **shape
            )
            return message_json(self.state, record)

    def add_messages(
        self,
        sender_uid: str,
        count: int,
        *,
        to_user: str | None = None,
        to_group: str | None = None,
        text: str = "message {n}",
    ) -> list[str]:
        """``count`` text messages from ``sender_uid``, one second apart (``text`` is formatted
        with ``n`` = 1…count); returns their ids, oldest first."""
        with self.state.lock:
            return [
                str(
                    self.state.send_message(
                        sender_uid, to_user=to_user, to_group=to_group, text=text.format(n=n)
                    ).id
                )
                for n in range(1, count + 1)
            ]

    def delete_message(self, message_id: str | int, *, by: str | None = None) -> None:
        """Mark a message deleted (``deletedAt`` now, ``deletedBy`` ``by`` or its sender); the
        message lists keep it without text, and a conversation whose last message it was loses
        ``lastMessage``."""
        with self.state.lock:
            record = self.state.find_message(int(message_id))
            self.state.delete_message(record, by=by or record.sender)

    def block_user(self, blocker_uid: str, blocked_uid: str) -> None:
        """``blocker_uid`` blocks ``blocked_uid`` (one-way; blocking twice is harmless).

        ``GET /conversations`` for the blocker then leaves out their one-to-one conversation
        unless ``includeBlockedUsers=true``; ``withBlockedInfo=true`` shows the block as
        ``blockedByMe`` / ``hasBlockedMe`` on the user in ``conversationWith``."""
        self.state.block_user(blocker_uid, blocked_uid)

    def unblock_user(self, blocker_uid: str, blocked_uid: str) -> None:
        self.state.unblock_user(blocker_uid, blocked_uid)

    def mark_read(self, owner_uid: str, conversation_id: str) -> None:
        self.state.mark_read(owner_uid, conversation_id)

    def delete_last_message(self, conversation_id: str) -> None:
        self.state.delete_last_message(conversation_id)

    def set_conversation_tags(
        self, owner_uid: str, conversation_id: str, tags: Iterable[str]
    ) -> None:
        self.state.set_conversation_tags(owner_uid, conversation_id, tags)

    def unread_count(self, owner_uid: str, conversation_id: str) -> int:
        return self.state.unread_count(owner_uid, conversation_id)

    def bulk_conversations(self, owner_uid: str, n: int, *, prefix: str = "peer") -> list[str]:
        """``n`` peers ``<prefix>-<i>`` with one conversation each with the owner (see
        :func:`.seed.bulk_conversations`); returns the peers' UIDs."""
        return seed.bulk_conversations(self.state, owner_uid, n, prefix=prefix)

    def seed_demo(self) -> seed.Seeded:
        """Demo users ``alice`` … ``heidi`` and friends, groups, ~270 conversations; returns the
        UIDs and GUIDs it created (``.uids``, ``.guids``)."""
        return seed.seed_demo(self.state)

    conversation_id = staticmethod(direct_conversation_id)
    group_conversation_id = staticmethod(group_conversation_id)

    # -- faults --------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        return self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def pending_faults(self) -> list[tuple[Fault, int]]:
        return self._faults.pending()

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        path: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """The next ``n`` matching requests answer ``status`` (a CometChat error by default)."""
        return self.inject(
            Fault("status", times=n, status=status, path=path, body=body, headers=headers)
        )

    def rate_limit_next(
        self, n: int = 1, *, retry_after: int = 1, path: str | None = None
    ) -> Fault:
        """The next ``n`` matching requests answer 429 as the limiter does: ``Retry-After:
        retry_after``, remaining 0 and a reset ``retry_after`` seconds after this call.

        For a 429 with only one of those headers, or neither, use :meth:`fail_next`."""
        headers = {"Retry-After": str(retry_after)}
        reset_at = str(math.ceil(time.time()) + retry_after)
        for _limit, remaining, reset in header_names(self._options.header_style):
            headers.update({remaining: "0", reset: reset_at})
        return self.fail_next(n, status=429, path=path, headers=headers)

    def delay_next(self, seconds: float, n: int = 1, *, path: str | None = None) -> Fault:
        return self.inject(Fault("delay", times=n, delay=seconds, path=path))

    def drop_next(self, n: int = 1, *, path: str | None = None) -> Fault:
        """Close the connection cleanly (FIN) without an answer."""
        return self.inject(Fault("drop", times=n, path=path))

    def reset_next(self, n: int = 1, *, path: str | None = None) -> Fault:
        """Abort the connection (RST) without an answer."""
        return self.inject(Fault("reset", times=n, path=path))

    def transform_next(
        self, transform: Callable[[Any], Any], n: int = 1, *, path: str | None = None
    ) -> Fault:
        """Answer 200 with ``transform(<the normal answer's decoded JSON>)`` as the body."""
        return self.inject(Fault("transform", times=n, path=path, transform=transform))

    def hold_next(
        self,
        n: int = 1,
        *,
        path: str | None = None,
        query: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Fault:
        """The next ``n`` matching requests get the answer built when they arrive, sent only
        once the test sets ``fault.release`` (``fault.held`` is set when one is waiting)."""
        return self.inject(Fault("hold", times=n, path=path, query=query, hold_timeout=timeout))

    def after_next(
        self,
        action: Callable[[], Any],
        n: int = 1,
        *,
        path: str | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Fault:
        """Run ``action()`` once the answer to each of the next ``n`` matching requests is
        built, before it is sent: data changed between two page requests."""
        return self.inject(Fault("after", times=n, path=path, query=query, action=action))

    # -- request log ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._log_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._requests.clear()

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start (or the last :meth:`reset`)."""
        with self._log_lock:
            return self._connections

    def _connection_opened(self, sock: socket.socket) -> None:
        with self._log_lock:
            self._connections += 1
            self._open_sockets.add(sock)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._log_lock:
            self._open_sockets.discard(sock)

    # -- answering -----------------------------------------------------------------------------

    def _answer(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        *,
        at: float | None = None,
    ) -> Reply | Hangup:
        generation = self._generation  # a request still running across reset() is not logged
        raw_path, _, query_string = target.partition("?")
        request = Request(
            method=method,
            raw_path=raw_path,
            query=dict(parse_qsl(query_string, keep_blank_values=True)),
            headers=headers,
            at=time.time() if at is None else at,
            options=self._options,  # one snapshot for the whole answer
            api_key=self.api_key,
        )
        reply = self._responder.respond(request)
        record = RecordedRequest(
            method=method,
            path=raw_path,
            query=request.query,
            headers=headers,
            status=None if isinstance(reply, str) else reply.status,
            body=body,
            at=request.at,
        )
        with self._log_lock:
            if generation == self._generation:
                self._requests.append(record)
        return reply
