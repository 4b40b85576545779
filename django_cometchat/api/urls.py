"""API routes; included by ``django_cometchat.urls`` (namespace ``django_cometchat``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views

# str (any one path segment) on purpose: the view validates the id, so a malformed one is a
# clear 400 ERR_INVALID_ID rather than an unexplained 404 from the resolver.
urlpatterns: list[URLPattern] = [
    path("conversations/", views.ConversationListView.as_view(), name="conversation-list"),
    # Before <conversation_id>/ so "refresh" is never taken for an id.
    path("conversations/refresh/", views.SyncView.as_view(), name="conversation-sync"),
    path(
        "conversations/<str:conversation_id>/",
        views.ConversationDetailView.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<str:conversation_id>/history/",
        views.ConversationHistoryView.as_view(),
        name="conversation-history",
    ),
    path(
        "conversations/<str:conversation_id>/refresh/",
        views.ConversationRefreshView.as_view(),
        name="conversation-refresh",
    ),
    path("sync-runs/", views.SyncRunListView.as_view(), name="syncrun-list"),
    path("sync-runs/<int:pk>/", views.SyncRunDetailView.as_view(), name="syncrun-detail"),
]
