"""The django-cometchat admin: read-only conversations (with a Messages view of each), snapshots,
sync runs, UID bindings, webhook events, the record of staff reads of messages, and a sync
health page.

Importing this package (Django's admin autodiscovery does) registers the six ModelAdmins and
the health page (``HealthAdmin``, for the table-less ``Health`` model) on
``django.contrib.admin.site``. A project that wants its own site can register them there too::

    from django_cometchat.admin import ConversationAdmin
    my_site.register(Conversation, ConversationAdmin)

See docs/admin.md.
"""

from __future__ import annotations

from .access import MessageAccessAdmin
from .base import ReadOnlyAdmin
from .conversations import ConversationAdmin, ConversationSnapshotAdmin, SnapshotInline
from .health import HealthAdmin
from .pagination import ApproximateCount, LargeTablePaginator
from .sync_runs import SyncRunAdmin
from .uid_bindings import UIDBindingAdmin
from .webhook_events import WebhookEventAdmin

__all__ = [
    "ApproximateCount",
    "ConversationAdmin",
    "ConversationSnapshotAdmin",
    "HealthAdmin",
    "LargeTablePaginator",
    "MessageAccessAdmin",
    "ReadOnlyAdmin",
    "SnapshotInline",
    "SyncRunAdmin",
    "UIDBindingAdmin",
    "WebhookEventAdmin",
]
