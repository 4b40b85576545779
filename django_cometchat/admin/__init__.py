"""The django-cometchat admin: read-only conversations (with a Messages view of each), snapshots,
sync runs, UID bindings, webhook events and the record of staff reads of messages.

Importing this package (Django's admin autodiscovery does) registers the six ModelAdmins on
``django.contrib.admin.site``. A project that wants its own site can register them there too::

    from django_cometchat.admin import ConversationAdmin
    my_site.register(Conversation, ConversationAdmin)

See docs/admin.md.
"""

from __future__ import annotations

from .access import MessageAccessAdmin
from .options import (
    ConversationAdmin,
    ConversationSnapshotAdmin,
    ReadOnlyAdmin,
    SnapshotInline,
    SyncRunAdmin,
    UIDBindingAdmin,
    WebhookEventAdmin,
)
from .pagination import ApproximateCount, LargeTablePaginator

__all__ = [
    "ApproximateCount",
    "ConversationAdmin",
    "ConversationSnapshotAdmin",
    "LargeTablePaginator",
    "MessageAccessAdmin",
    "ReadOnlyAdmin",
    "SnapshotInline",
    "SyncRunAdmin",
    "UIDBindingAdmin",
    "WebhookEventAdmin",
]
