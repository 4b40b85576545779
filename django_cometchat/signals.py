"""Signals sent by the services (and the client) as work finishes.

Sent after each write commits:

* ``conversations_synced(sender=SyncRun, result=SyncResult)``: once per finished sync, success or
  failure (``result.run.status`` tells which).
* ``conversation_changed(sender=Conversation, owner_uid, conversation_id, pk, created)``: once per
  conversation whose stored payload changed (created or updated). Sent only when someone listens,
  so an idle signal costs a sync nothing.
* ``webhook_processed(sender=WebhookEvent, event, owners)``: once per webhook event the
  ``process_webhook_event`` task handled (or the webhook could not queue), processed or failed
  (``event.status`` tells which); ``owners`` are the UIDs whose conversations it refreshed
  (sorted).
* ``conversation_messages_read(sender=MessageAccess, access)``: once per page of a
  conversation's messages read by someone other than its owner (staff), after its
  ``MessageAccess`` row commits: for hosts that ship audit events elsewhere. ``access`` is the
  row (reader, owner UID, conversation id, time, message count, cursor).

For metrics and tracing (``contrib.prometheus`` feeds on them; OpenTelemetry or StatsD receivers
can hook the same). Their arguments are low-cardinality values, never a UID; each is sent with
``send_robust``, so a receiver that raises is logged (logger ``django.dispatch``) and the work
goes on; with no receiver a send costs a dictionary lookup:

* ``upstream_request_answered(sender=CometChatClient, endpoint, status, seconds)``: once per
  attempt of a request to CometChat (a retried request sends one per attempt). ``endpoint`` is
  the method and path template, ``"GET /users/{uid}/conversation"``, never the path with its
  ids; ``status`` the HTTP status, or None when no answer came (a connection failure, a
  timeout); ``seconds`` from the attempt's send to its answer (or failure).
* ``sync_run_finished(sender=SyncRun, run, outcome, trigger, seconds)``: once per ``SyncRun``
  that ends (dry runs record none): ``outcome`` is ``"succeeded"``, ``"failed"`` or
  ``"abandoned"`` (marked failed by ``SYNC_ABANDONED_AFTER``); ``trigger`` the run's
  (``"command"``, ``"api"``, …); ``seconds`` from its start to its end.
* ``webhook_event_finished(sender=WebhookEvent, event, trigger, status, lag)``: once per webhook
  event that reaches an end: ``status`` ``"processed"``, ``"failed"`` (its processing, or a
  delivery refused as malformed) or ``"ignored"``. ``trigger`` is CometChat's (empty for a body
  too broken to name one); ``lag`` the seconds from CometChat's event time (a message's
  ``updatedAt``/``sentAt``, a receipt's or a block's time) to the end, None when the event
  carries no time (group membership events, the published block body).
"""

from __future__ import annotations

from django.dispatch import Signal

conversations_synced = Signal()
conversation_changed = Signal()
webhook_processed = Signal()
conversation_messages_read = Signal()
upstream_request_answered = Signal()
sync_run_finished = Signal()
webhook_event_finished = Signal()
