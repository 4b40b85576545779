"""The fake's REST endpoints: request in, (status, JSON payload) out. No sockets here.

Implemented (all under ``/v3``; API.md §2 and §4):

- ``GET /conversations`` (``onBehalfOf`` optional; ``includeBlockedUsers``, ``withBlockedInfo``
  and the filters of API.md §2.1), ``GET /conversations/{conversationId}`` (deprecated;
  ``onBehalfOf`` required)
- ``GET /users/{uid}/conversation``, ``GET /groups/{guid}/conversation`` (``onBehalfOf`` required)
- ``POST /users/{uid}/conversation/read``, ``POST /groups/{guid}/conversation/read``
- ``GET /users``, ``GET /users/{uid}``
- ``GET /users/{uid}/messages``, ``GET /groups/{guid}/messages`` (``onBehalfOf`` required; the
  cursor semantics are in :mod:`.messages`)

Choices where CometChat's contract is silent:

- ``ERR_CONVERSATION_NOT_ACCESSIBLE`` answers HTTP 403 (configurable through
  ``FakeOptions.not_accessible_status``); clients should branch on the code, not the status.
- A required ``onBehalfOf`` that is missing answers 400 ``ERR_BAD_REQUEST`` with
  ``details.onBehalfOf``; an unknown one answers 404 ``ERR_UID_NOT_FOUND``.
- A known path with another method answers 404 ``ERR_API_NOT_FOUND``.
- The message lists answer ``ERR_CONVERSATION_NOT_ACCESSIBLE`` (API.md §5.3: "not the owner's
  1:1, not a group member, or no messages yet") as the single conversation GETs do, so an
  ``onBehalfOf`` user outside the group, or a pair that never chatted, is refused.
- Blocking only thins the list: single GETs still answer a conversation with a blocked user.
- ``meta.pagination`` is exact unless ``FakeOptions.pagination_mode`` is "lookahead" (API.md
  §0.5); ``FakeOptions.omit_pagination_keys`` drops keys from it.

Stdlib only; no Django.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from .errors import error_envelope
from .faults import API_PREFIX
from .messages import AFFIXES, DEFAULT_LIMIT, MAX_LIMIT, MessageQuery, message_page
from .options import FakeOptions
from .render import (
    ConversationRenderer,
    RenderOptions,
    conversation_json,
    dumps,
    user_json,
)
from .state import (
    JSON,
    ConversationRecord,
    State,
    UserRecord,
    direct_conversation_id,
    group_conversation_id,
    normalize_id,
)

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class RawJSON:
    """A payload already encoded as JSON text."""

    text: str


@dataclass
class ApiResponse:
    status: int
    payload: Any


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str | None = None,
        details: Mapping[str, list[str]] | None = None,
        *,
        dev_message: str | None = None,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.dev_message = dev_message

    def response(self) -> ApiResponse:
        envelope = error_envelope(
            self.code, self.message, self.details, dev_message=self.dev_message
        )
        return ApiResponse(self.status, envelope)


def bad_request(field: str, message: str) -> ApiError:
    return ApiError(
        400,
        "ERR_BAD_REQUEST",
        "Failed to validate the data sent with the request.",
        {field: [message]},
    )


def uid_not_found(uid: str) -> ApiError:
    return ApiError(
        404,
        "ERR_UID_NOT_FOUND",
        f"The UID {uid} does not exist, please make sure you have created a user with UID {uid}.",
    )


def guid_not_found(guid: str) -> ApiError:
    return ApiError(
        404,
        "ERR_GUID_NOT_FOUND",
        f"The GUID {guid} does not exist, please make sure you have created a group "
        f"with GUID {guid}.",
    )


def endpoint_not_found() -> ApiError:
    return ApiError(404, "ERR_API_NOT_FOUND")


def authenticate(headers: Mapping[str, str], api_key: str) -> ApiError | None:
    """401 unless the ``apikey`` header (any case) carries ``api_key``. Never echoes the key."""
    sent = headers.get("apikey", "").strip()
    if not sent:
        return ApiError(
            401,
            "AUTH_ERR_EMPTY_APIKEY",
            "The apikey header is missing or empty in the request.",
            dev_message="Send the app's REST API key in the apikey header.",
        )
    if not hmac.compare_digest(sent.encode(), api_key.encode()):
        return ApiError(
            401,
            "AUTH_ERR_APIKEY_NOT_FOUND",
            "The apiKey provided does not exist for this app. Please verify the apiKey.",
            dev_message="No REST API key of this app matches the apikey header.",
        )
    return None


def is_list_endpoint(method: str, raw_path: str) -> bool:
    """Whether the request targets an endpoint that answers a list (for "wrong_shape" faults)."""
    found = route_for(method, raw_path)
    return found is not None and found[0].lists


def handle(
    state: State,
    options: FakeOptions,
    *,
    method: str,
    raw_path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    renderer: ConversationRenderer | None = None,
) -> ApiResponse:
    """Route one authenticated request."""
    found = route_for(method, raw_path)
    try:
        if found is None:
            raise endpoint_not_found()
        route, args = found
        call = Call(state, options, query, headers, renderer)
        with state.lock:
            return ApiResponse(200, route.handler(call, *args))
    except ApiError as error:
        return error.response()


def _segments(raw_path: str) -> list[str] | None:
    """Percent-decoded path segments after ``/v3``; None when the path is not under ``/v3``."""
    if not raw_path.startswith(API_PREFIX + "/"):
        return None
    rest = raw_path[len(API_PREFIX) + 1 :]
    if rest.endswith("/"):
        rest = rest[:-1]
    return [unquote(part) for part in rest.split("/")]


@dataclass
class Call:
    """One authenticated request; its methods are the endpoints (see :data:`ROUTES`)."""

    state: State
    options: FakeOptions
    query: Mapping[str, str]
    headers: Mapping[str, str]
    renderer: ConversationRenderer | None = None

    # -- helpers -------------------------------------------------------------------------------

    def flag(self, name: str) -> bool:
        value = self.query.get(name)
        if value is None:
            return False
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        raise bad_request(name, f"The {name} field must be true or false.")

    def integer(self, name: str, label: str, default: int, maximum: int | None = None) -> int:
        value = self.query.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise bad_request(name, f"The {label} must be an integer.") from None
        if number < 1:
            raise bad_request(name, f"The {label} must be at least 1.")
        if maximum is not None and number > maximum:
            raise bad_request(name, f"The {label} may not be greater than {maximum}.")
        return number

    def csv(self, name: str) -> set[str]:
        return {part.strip() for part in self.query.get(name, "").split(",") if part.strip()}

    def paging(self) -> tuple[int, int]:
        page = self.integer("page", "page", 1)
        per_page = self.integer("perPage", "per page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
        return page, per_page

    def optional_owner(self) -> str | None:
        raw = self.headers.get("onbehalfof", "").strip()
        if not raw:
            return None
        owner = normalize_id(raw)
        if self.state.find_user(owner) is None:
            raise uid_not_found(owner)
        return owner

    def required_owner(self) -> str:
        owner = self.optional_owner()
        if owner is None:
            raise bad_request("onBehalfOf", "The onBehalfOf header is required.")
        return owner

    def single(self, obj: JSON) -> Any:
        return [obj] if self.options.single_as_list else obj

    def not_accessible(self, conversation_id: str, owner: str) -> ApiError:
        return ApiError(
            self.options.not_accessible_status,
            "ERR_CONVERSATION_NOT_ACCESSIBLE",
            f"The conversation {conversation_id} is not accessible for the UID {owner}.",
        )

    def page_of(self, rows: Sequence[Any], page: int, per_page: int) -> tuple[Sequence[Any], JSON]:
        """One page of ``rows`` and its ``meta.pagination``, shaped by the pagination options."""
        total = len(rows)
        chunk = rows[(page - 1) * per_page : page * per_page]
        if self.options.pagination_mode == "lookahead":  # "is there another page", no total
            more = page * per_page < total
            total, total_pages = 0, page + 1 if more else page
        else:
            total_pages = max(1, math.ceil(total / per_page))
        pagination = {
            "total": total,
            "count": len(chunk),
            "per_page": per_page,
            "current_page": page,
            "total_pages": total_pages,
        }
        for key in self.options.omit_pagination_keys:
            del pagination[key]
        return chunk, {"pagination": pagination}

    # -- conversations -------------------------------------------------------------------------

    def list_conversations(self) -> JSON | RawJSON:
        page, per_page = self.paging()
        conversation_type = self.query.get("conversationType")
        if conversation_type == "":
            conversation_type = None
        if conversation_type not in (None, "user", "group"):
            raise bad_request("conversationType", "The selected conversation type is invalid.")
        unread = self.flag("unread")
        include_blocked = self.flag("includeBlockedUsers")
        render = self.render_options(receipts=True)
        search = self.query.get("searchKey", "").strip().lower()
        tags = self.csv("tags")
        user_tags = self.csv("userTags")
        group_tags = self.csv("groupTags")
        state = self.state

        def keep(owner: str, row: ConversationRecord) -> bool:
            if conversation_type is not None and row.type != conversation_type:
                return False
            if unread and not row.unread.get(owner):
                return False
            if search and search not in state.peer_name(row, owner).lower():
                return False
            if tags and not tags.intersection(row.tags.get(owner, ())):
                return False
            if user_tags and (
                row.type != "user" or not user_tags.intersection(state.peer_tags(row, owner))
            ):
                return False
            return not group_tags or (
                row.type == "group" and bool(group_tags.intersection(state.peer_tags(row, owner)))
            )

        filtering = bool(conversation_type or unread or search or tags or user_tags or group_tags)
        owner = self.optional_owner()
        pairs: Sequence[tuple[str, ConversationRecord]]
        if owner is not None:
            rows: Sequence[ConversationRecord] = state.listed_conversations(
                owner, include_blocked=include_blocked
            )
            if filtering:
                rows = [row for row in rows if keep(owner, row)]
            chunk, meta = self.page_of(rows, page, per_page)
            pairs = [(owner, row) for row in chunk]
        else:
            every: Sequence[tuple[str, ConversationRecord]] = state.listed_app_conversations(
                include_blocked=include_blocked
            )
            if filtering:
                every = [pair for pair in every if keep(*pair)]
            pairs, meta = self.page_of(every, page, per_page)
        fast = self.renderer
        if fast is not None and fast.serves(render):
            texts = ",".join([fast.conversation(row, who, render) for who, row in pairs])
            return RawJSON(f'{{"data":[{texts}],"meta":{dumps(meta)}}}')
        data = [conversation_json(state, row, who, render) for who, row in pairs]
        return {"data": data, "meta": meta}

    def render_options(self, *, receipts: bool) -> RenderOptions:
        return RenderOptions(
            receipts=receipts,
            with_tags=self.flag("withTags"),
            with_peer_tags=self.flag("withUserAndGroupTags"),
            with_blocked_info=self.flag("withBlockedInfo"),
        )

    def render_single(self, row: ConversationRecord, owner: str, *, receipts: bool) -> Any:
        # withBlockedInfo is a parameter of the list alone (API.md §2.1): ignored here.
        render = replace(self.render_options(receipts=receipts), with_blocked_info=False)
        return {"data": self.single(conversation_json(self.state, row, owner, render))}

    def user_conversation(self, uid: str) -> tuple[str, ConversationRecord]:
        owner = self.required_owner()
        peer = self.state.find_user(uid)
        if peer is None:
            raise uid_not_found(normalize_id(uid))
        conversation_id = direct_conversation_id(owner, peer.uid)
        row = self.state.conversations.get(conversation_id)
        if row is None or peer.uid == owner:
            raise self.not_accessible(conversation_id, owner)
        return owner, row

    def group_conversation(self, guid: str) -> tuple[str, ConversationRecord]:
        owner = self.required_owner()
        group = self.state.groups.get(normalize_id(guid))
        if group is None:
            raise guid_not_found(normalize_id(guid))
        conversation_id = group_conversation_id(group.guid)
        row = self.state.conversations.get(conversation_id)
        if row is None or owner not in group.members:
            raise self.not_accessible(conversation_id, owner)
        return owner, row

    def get_user_conversation(self, uid: str) -> Any:
        owner, row = self.user_conversation(uid)
        return self.render_single(row, owner, receipts=False)

    def get_group_conversation(self, guid: str) -> Any:
        owner, row = self.group_conversation(guid)
        return self.render_single(row, owner, receipts=False)

    def get_conversation(self, conversation_id: str) -> Any:
        owner = self.required_owner()
        conversation_id = normalize_id(conversation_id)
        row = self.state.conversations.get(conversation_id)
        if row is None:
            raise ApiError(
                404,
                "ERR_CONVERSATION_NOT_FOUND",
                f"The conversation {conversation_id} does not exist.",
            )
        if not self.state.can_see(owner, row):
            raise self.not_accessible(conversation_id, owner)
        return self.render_single(row, owner, receipts=True)

    def mark_user_read(self, uid: str) -> JSON:
        owner, row = self.user_conversation(uid)
        row.unread[owner] = 0
        message = (
            f"All the messages from the user {row.peer_for(owner)} are marked as read "
            f"for the user {owner}."
        )
        return {"data": {"success": True, "Message": message}}  # capital M, as CometChat sends

    def mark_group_read(self, guid: str) -> JSON:
        owner, row = self.group_conversation(guid)
        row.unread[owner] = 0
        message = (
            f"All the messages from the group {row.peer_for(owner)} are marked as read "
            f"for the user {owner}."
        )
        return {"data": {"success": True, "message": message}}

    # -- messages (API.md §4.3) ----------------------------------------------------------------

    def message_query(self) -> MessageQuery:
        above = self.options.messages_limit_above_max == "reject"
        limit = self.integer("limit", "limit", DEFAULT_LIMIT, MAX_LIMIT if above else None)
        affix = self.query.get("affix") or "prepend"
        if affix not in AFFIXES:
            raise bad_request("affix", "The selected affix is invalid.")
        return MessageQuery(
            limit=min(limit, MAX_LIMIT),
            affix=affix,  # type: ignore[arg-type]  # checked just above
            id=self.cursor_number("id"),
            sent_at=self.cursor_number("sentAt"),
            hide_deleted=self.flag("hideDeleted"),
        )

    def cursor_number(self, name: str) -> int | None:
        value = self.query.get(name)
        if value is None or value == "":
            return None
        if not value.isascii() or not value.isdigit() or len(value) > 19:
            raise bad_request(name, f"The {name} must be an integer.")
        return int(value)

    def messages_of(self, conversation_id: str, query: MessageQuery) -> JSON:
        options = self.options
        return message_page(
            self.state,
            conversation_id,
            query,
            meta_shape=options.messages_meta,
            pagination_mode=options.pagination_mode,
            omit_pagination_keys=options.omit_pagination_keys,
        )

    def list_user_messages(self, uid: str) -> JSON:
        query = self.message_query()  # a malformed cursor is refused before access is checked
        _owner, row = self.user_conversation(uid)
        return self.messages_of(row.conversation_id, query)

    def list_group_messages(self, guid: str) -> JSON:
        query = self.message_query()
        _owner, row = self.group_conversation(guid)
        return self.messages_of(row.conversation_id, query)

    # -- users ---------------------------------------------------------------------------------

    def list_users(self) -> JSON:
        page, per_page = self.paging()
        owner = self.optional_owner()
        with_tags = self.flag("withTags")
        search = self.query.get("searchKey", "").strip().lower()
        users = self.state.users

        def keep(user: UserRecord) -> bool:
            if user.deactivated:
                return False
            return not search or user.uid.startswith(search) or user.name.lower().startswith(search)

        rows = [users[uid] for uid in sorted(users) if keep(users[uid])]
        chunk, meta = self.page_of(rows, page, per_page)
        data = [self.user_payload(user, owner, with_tags) for user in chunk]
        body: JSON = {"data": data, "meta": meta}
        if chunk:  # the example's stray top-level cursor (API.md §4.1), mirrored
            body["cursor"] = {"updatedAt": chunk[-1].fields.get("updatedAt"), "affix": "prepend"}
        return body

    def user_payload(self, user: UserRecord, owner: str | None, with_tags: bool) -> JSON:
        conversation_id = (
            direct_conversation_id(owner, user.uid)
            if owner is not None and owner != user.uid
            else None
        )
        return user_json(user, conversation_id=conversation_id, with_tags=with_tags)

    def get_user(self, uid: str) -> JSON:
        owner = self.optional_owner()
        user = self.state.find_user(uid)
        if user is None:
            raise uid_not_found(normalize_id(uid))
        return {"data": self.user_payload(user, owner, self.flag("withTags"))}


# -- routing -----------------------------------------------------------------------------------

ID = "{id}"  # in a pattern: any non-empty segment, passed to the handler


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]  # path segments after /v3
    handler: Callable[..., Any]  # a Call method, given the ID segments in order
    lists: bool = False  # answers a list (wrong_shape faults answer an object instead)

    def match(self, method: str, segments: Sequence[str]) -> list[str] | None:
        """The ID segments when this route serves the request, else None."""
        if method != self.method or len(segments) != len(self.pattern):
            return None
        args: list[str] = []
        for want, got in zip(self.pattern, segments, strict=True):
            if want == ID and got:
                args.append(got)
            elif want != got:
                return None
        return args


ROUTES: tuple[Route, ...] = (
    Route("GET", ("conversations",), Call.list_conversations, lists=True),
    Route("GET", ("conversations", ID), Call.get_conversation),
    Route("GET", ("users",), Call.list_users, lists=True),
    Route("GET", ("users", ID), Call.get_user),
    Route("GET", ("users", ID, "conversation"), Call.get_user_conversation),
    Route("GET", ("groups", ID, "conversation"), Call.get_group_conversation),
    Route("GET", ("users", ID, "messages"), Call.list_user_messages, lists=True),
    Route("GET", ("groups", ID, "messages"), Call.list_group_messages, lists=True),
    Route("POST", ("users", ID, "conversation", "read"), Call.mark_user_read),
    Route("POST", ("groups", ID, "conversation", "read"), Call.mark_group_read),
)


def route_for(method: str, raw_path: str) -> tuple[Route, list[str]] | None:
    """The route serving ``method`` + ``raw_path`` and its ID arguments; None for unknown ones."""
    segments = _segments(raw_path)
    if segments is None:
        return None
    for route in ROUTES:
        args = route.match(method, segments)
        if args is not None:
            return route, args
    return None
