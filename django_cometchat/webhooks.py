"""CometChat's webhook: ``POST webhook/`` (url name ``django_cometchat:webhook``).

A plain Django view, not a DRF one: it is CometChat's endpoint, not the front end's, so it stays
out of the published API schema and out of DRF's authentication, throttles and content
negotiation. The order of its refusals, each in the API's JSON error shape:

1. 405 for anything but POST;
2. 401 (``WWW-Authenticate: Basic realm="cometchat-webhook"``) unless the request carries HTTP
   Basic credentials equal to one of ``COMETCHAT["WEBHOOK_BASIC_AUTH"]``'s entries, compared in
   constant time, every entry every time; with no entry configured every request is refused
   (system check ``django_cometchat.I001``). Nothing is read or recorded for a refused caller;
3. 413 for a body over ``MAX_BODY_BYTES``, 400 for one that is not JSON or not the contract
   (``webhook_types``): recorded as failed, without the body;
4. 503 when the task backend refuses ``process_webhook_event``: the event is recorded as failed,
   and CometChat's retry of it (after 10 s, then 30 s) takes it over and is processed;
5. 200 otherwise: ``{"status": "accepted"}`` (recorded, or a failed event taken over, and
   ``process_webhook_event`` enqueued), ``"deferred"`` (processed inline, and the rate budget
   had no slot for it without waiting: recorded as deferred, for ``cometchat_refresh_stale``),
   ``"ignored"`` (a trigger this app does not act on, or a
   delivery for another CometChat app: recorded only, nothing is fetched) or ``"duplicate"`` (an
   event recorded before and received, processing, processed or ignored, which CometChat
   retried: nothing more is done). See ``services.record_webhook``.

CometChat waits 2 seconds for the answer. The view records the event and enqueues its
processing; with a task worker (``TASKS``) that is all it does, and the refreshes, one upstream
request per affected owner, run on the worker. With the immediate backend they run inline,
before the answer (see docs/webhooks.md), and never wait for a rate window: what the budget
cannot take now is deferred.

CSRF does not apply here (``csrf_exempt`` on this view only): CometChat sends no token, and the
Basic credentials are what authenticate it. Nor does a site login (``login_not_required``, for
Django's ``LoginRequiredMiddleware``): CometChat has no session to sign in with. The view
manages its own transactions (``non_atomic_requests``), so the event is committed before a
worker can look for it, even under ``ATOMIC_REQUESTS``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import services, tasks
from .conf import get_settings
from .exceptions import CometChatConfigurationError, CometChatResponseError
from .models import WebhookEvent
from .redaction import Secret, redact
from .webhook_types import Delivery, parse_webhook, trigger_of

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB; CometChat's messages are at most 64 K characters
REALM = 'Basic realm="cometchat-webhook"'


def error_response(status: int, code: str, message: str) -> JsonResponse:
    """The API's error shape: ``{"error": {"code", "message", "status"}}``."""
    body = {"error": {"code": code, "message": redact(message), "status": status}}
    return JsonResponse(body, status=status)


def credentials_match(header: str, credentials: Sequence[tuple[str, Secret]]) -> bool:
    """Whether an ``Authorization`` header carries Basic credentials equal to one of the
    configured (user, password) pairs.

    Every pair is compared, user and password, with ``hmac.compare_digest``, and the results are
    combined without short-circuiting: how long this takes does not say which entry (nor which
    half of one) came close. No pair configured: nothing matches.
    """
    given_user, given_password = _basic_credentials(header)
    matched = False
    for user, password in credentials:
        user_ok = hmac.compare_digest(given_user, user.encode())
        password_ok = hmac.compare_digest(given_password, password.reveal().encode())
        matched |= user_ok & password_ok
    return matched


def _basic_credentials(header: str) -> tuple[bytes, bytes]:
    """(user, password) of a Basic ``Authorization`` header; two empty values for anything
    else, which match no configured pair (those are never empty)."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return b"", b""
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b"", b""
    user, separator, password = decoded.partition(b":")
    return (user, password) if separator else (b"", b"")


def _authorized(request: HttpRequest) -> bool:
    try:
        credentials = get_settings().webhook_credentials
    except CometChatConfigurationError as exc:  # reported by the system checks (E006)
        logger.warning("CometChat webhook refused: the settings are invalid: %s", exc)
        credentials = ()
    return credentials_match(request.META.get("HTTP_AUTHORIZATION", ""), credentials)


def _content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


class Refused(Exception):
    """A delivery refused after authentication: recorded as failed, without its body."""

    def __init__(self, status: int, code: str, message: str, *, trigger: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.trigger = trigger


def read_delivery(request: HttpRequest) -> Delivery:
    """The request's body as a parsed delivery; ``Refused`` (413 or 400) otherwise."""
    too_large = Refused(
        413, "ERR_PAYLOAD_TOO_LARGE", f"The body is larger than {MAX_BODY_BYTES} bytes."
    )
    if _content_length(request) > MAX_BODY_BYTES:
        raise too_large  # refused before a byte of it is read
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise too_large
    try:
        decoded: Any = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep, a huge number
        raise Refused(400, "ERR_MALFORMED_JSON", "The body is not valid JSON.") from None
    try:
        return parse_webhook(decoded)
    except CometChatResponseError as exc:
        raise Refused(
            400,
            "ERR_INVALID_PAYLOAD",
            f"The body is not a CometChat webhook: {exc.describe()}",
            trigger=trigger_of(decoded),
        ) from None


@csrf_exempt
@login_not_required
@transaction.non_atomic_requests
def receive(request: HttpRequest) -> HttpResponse:
    """Receive one CometChat webhook delivery (see the module's docstring)."""
    if request.method != "POST":
        response = error_response(
            405, "ERR_METHOD_NOT_ALLOWED", f'Method "{request.method}" not allowed.'
        )
        response["Allow"] = "POST"
        return response
    if not _authorized(request):
        logger.info("CometChat webhook refused: missing or wrong credentials")
        response = error_response(
            401, "ERR_NOT_AUTHENTICATED", "Webhook credentials are missing or wrong."
        )
        response["WWW-Authenticate"] = REALM
        return response
    try:
        delivery = read_delivery(request)
    except Refused as refused:
        event = services.record_refused_webhook(trigger=refused.trigger, error=refused.message)
        logger.warning("CometChat webhook delivery refused (event %s): %s", event.pk, refused)
        return error_response(refused.status, refused.code, refused.message)
    return accept(delivery)


def accept(delivery: Delivery) -> HttpResponse:
    """Record a parsed delivery and, for an event to act on, enqueue its processing."""
    event = services.record_webhook(delivery)
    if event is None:
        logger.info("CometChat webhook %s delivered again; nothing to do", delivery.trigger)
        return JsonResponse({"status": "duplicate"})
    if event.status == WebhookEvent.Status.IGNORED:
        return JsonResponse({"status": "ignored"})
    inline = not tasks.queues()
    try:
        # Processed here, before the answer: never wait for a rate window (CometChat waits 2 s).
        with services.without_waiting() if inline else nullcontext():
            # A worker's task already queued for an earlier event that still waits takes this
            # one after it (services.needs_task): a burst costs the queue one task, not one each.
            if inline or services.needs_task(event):
                tasks.process_webhook_event.enqueue(event.pk)
    except Exception as exc:  # the queue is down: the event says so, CometChat hears a 503
        services.finish_webhook_event(event, error=exc)
        return error_response(
            503, "ERR_QUEUE_UNAVAILABLE", "The event was recorded but could not be queued."
        )
    if inline:
        event.refresh_from_db(fields=["status"])
        if event.status == WebhookEvent.Status.DEFERRED:
            return JsonResponse({"status": "deferred"})
    return JsonResponse({"status": "accepted"})
