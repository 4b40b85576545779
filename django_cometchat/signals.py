"""Signals sent by the services after each write commits.

* ``conversations_synced(sender=SyncRun, result=SyncResult)``: once per finished sync, success or
  failure (``result.run.status`` tells which).
* ``conversation_changed(sender=Conversation, owner_uid, conversation_id, pk, created)``: once per
  conversation whose stored payload changed (created or updated). Sent only when someone listens,
  so an idle signal costs a sync nothing.
* ``webhook_processed(sender=WebhookEvent, event, owners)``: once per webhook event the
  ``process_webhook_event`` task handled (or the webhook could not queue), processed or failed
  (``event.status`` tells which); ``owners`` are the UIDs whose conversations it refreshed
  (sorted).
"""

from __future__ import annotations

from django.dispatch import Signal

conversations_synced = Signal()
conversation_changed = Signal()
webhook_processed = Signal()
