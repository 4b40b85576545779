"""The django-cometchat admin: read-only conversations, snapshots, sync runs, UID bindings and
webhook events, and a sync health page.

Importing this package (Django's admin autodiscovery does) registers the five ModelAdmins and
the health page (``HealthAdmin``, for the table-less ``Health`` model) on
``django.contrib.admin.site``. A project that wants its own site can register them there too::

    from django_cometchat.admin import ConversationAdmin
    my_site.register(Conversation, ConversationAdmin)

See docs/admin.md.
"""

from __future__ import annotations

from .health import HealthAdmin
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
    "HealthAdmin",
    "LargeTablePaginator",
    "ReadOnlyAdmin",
    "SnapshotInline",
    "SyncRunAdmin",
    "UIDBindingAdmin",
    "WebhookEventAdmin",
]
