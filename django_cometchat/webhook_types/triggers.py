"""The webhook triggers: those this app acts on, by family, and every one CometChat publishes.

Stdlib only. API.md §7 lists the triggers (the current table, then the legacy webhooks').
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeGuard

MESSAGE_TRIGGERS = ("message_sent", "message_edited", "message_deleted")
ACTION_TRIGGERS = ("message_edited", "message_deleted")  # an action message about another one
LEGACY_MESSAGE_TRIGGERS = ("after_message",)  # legacy webhooks: ``data`` is the message
RECEIPT_TRIGGERS = ("message_delivery_receipt", "message_read_receipt")  # current and legacy
BLOCK_TRIGGERS = ("user_blocked", "user_unblocked")
MEMBER_LOST_TRIGGERS = ("group_member_kicked", "group_member_left", "group_member_banned")
MEMBER_GAINED_TRIGGERS = ("group_member_added", "group_member_joined", "group_member_unbanned")
GROUP_DELETED = "group_deleted"
GROUP_TRIGGERS = (*MEMBER_LOST_TRIGGERS, *MEMBER_GAINED_TRIGGERS, GROUP_DELETED)
HANDLED_TRIGGERS = (
    *MESSAGE_TRIGGERS,
    *LEGACY_MESSAGE_TRIGGERS,
    *RECEIPT_TRIGGERS,
    *BLOCK_TRIGGERS,
    *GROUP_TRIGGERS,
)
# Every trigger value CometChat publishes (API.md §7: the current trigger table, then the legacy
# ones), for the admin's filter: a constant list, never a query of the values stored. A trigger
# not listed here is still recorded (and ignored).
KNOWN_TRIGGERS: tuple[str, ...] = (
    # Message
    *MESSAGE_TRIGGERS,
    *RECEIPT_TRIGGERS,
    "message_delivered_to_all",
    "message_read_by_all",
    "message_reaction_added",
    "message_reaction_removed",
    "user_mentioned",
    # User
    *BLOCK_TRIGGERS,
    "user_connection_status_changed",
    # Group
    "group_created",
    "group_updated",
    GROUP_DELETED,
    "group_member_added",
    "group_member_removed",
    "group_member_banned",
    "group_member_unbanned",
    "group_member_joined",
    "group_member_left",
    "group_member_kicked",
    "group_member_scope_changed",
    "group_owner_transferred",
    # Call / meeting
    "call_initiated",
    "call_started",
    "call_ended",
    "call_participant_joined",
    "call_participant_left",
    "call_busy",
    "call_cancelled",
    "call_rejected",
    "call_unanswered",
    "meeting_started",
    "meeting_ended",
    "meeting_participant_joined",
    "meeting_participant_left",
    "recording_generated",
    "transcription_generated",
    # Moderation
    "moderation_engine_approved",
    "moderation_engine_blocked",
    "moderation_manual_approved",
    "moderation_engine_failed",
    # Campaigns, notifications, feeds
    "after_campaign_completed",
    "after_campaign_failed",
    "after_notification_created",
    "after_feed_item_sent",
    "after_feed_item_delivered",
    "after_feed_item_read",
    "after_feed_item_interacted",
    "after_push_notification_sent",
    "after_push_notification_delivered",
    "after_push_notification_clicked",
    # Legacy webhooks (the receipts are listed above, under the same names)
    "before_message",
    *LEGACY_MESSAGE_TRIGGERS,
    "after_connection_status_changed",
)
# What a trigger may look like to be stored at all (CometChat's are lowercase snake case).
MAX_TRIGGER_LENGTH = 64
TRIGGER_RE = re.compile(rf"[a-z][a-z0-9_]{{0,{MAX_TRIGGER_LENGTH - 1}}}")


def is_trigger(value: Any) -> TypeGuard[str]:
    """Whether ``value`` looks like a trigger this app may store."""
    return isinstance(value, str) and TRIGGER_RE.fullmatch(value) is not None


def trigger_of(body: Any) -> str:
    """The trigger of any decoded body when it looks like one (for recording a refused
    delivery), else an empty string."""
    trigger = body.get("trigger") if isinstance(body, Mapping) else None
    return trigger if is_trigger(trigger) else ""
