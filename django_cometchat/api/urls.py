"""API routes; included by ``django_cometchat.urls`` (namespace ``django_cometchat``).

Every path under the API answers in the API's JSON error shape: conversation ids take any text
(``path``), so a malformed one, even with an encoded ``/``, is the view's clear 400
ERR_INVALID_ID; anything no route matches is a JSON 404 rather than Django's HTML page.
"""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from . import messages, views

urlpatterns: list[URLPattern] = [
    path("conversations/", views.ConversationListView.as_view(), name="conversation-list"),
    # Before the id patterns so "refresh" is never taken for an id.
    path("conversations/refresh/", views.SyncView.as_view(), name="conversation-sync"),
    # The suffixed routes before the bare one: a path converter would swallow the suffix.
    path(
        "conversations/<path:conversation_id>/history/",
        views.ConversationHistoryView.as_view(),
        name="conversation-history",
    ),
    path(
        "conversations/<path:conversation_id>/messages/",
        messages.ConversationMessagesView.as_view(),
        name="conversation-messages",
    ),
    path(
        "conversations/<path:conversation_id>/refresh/",
        views.ConversationRefreshView.as_view(),
        name="conversation-refresh",
    ),
    path(
        "conversations/<path:conversation_id>/",
        views.ConversationDetailView.as_view(),
        name="conversation-detail",
    ),
    path("sync-runs/", views.SyncRunListView.as_view(), name="syncrun-list"),
    path("sync-runs/<int:pk>/", views.SyncRunDetailView.as_view(), name="syncrun-detail"),
    re_path(r"^", views.NotFoundView.as_view(), name="not-found"),
]
