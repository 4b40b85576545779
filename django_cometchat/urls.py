"""Mount with ``path("cometchat/", include("django_cometchat.urls"))``.

``webhook/`` is CometChat's (see ``webhooks``); it comes before the API, whose last route answers
every other path with a JSON 404. ``webhook`` without its slash is accepted too: CometChat POSTs,
and ``APPEND_SLASH`` cannot redirect a POST, so a slash left out in CometChat's dashboard would
otherwise fail every delivery.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from . import webhooks

app_name = "django_cometchat"

urlpatterns: list[URLPattern | URLResolver] = [
    path("webhook/", webhooks.receive, name="webhook"),
    path("webhook", webhooks.receive, name="webhook-unslashed"),
    path("", include("django_cometchat.api.urls")),
]
