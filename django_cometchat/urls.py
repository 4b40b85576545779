"""Mount with ``path("cometchat/", include("django_cometchat.urls"))``.

``webhook/`` is CometChat's (see ``webhooks``); it comes before the API, whose last route answers
every other path with a JSON 404.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from . import webhooks

app_name = "django_cometchat"

urlpatterns: list[URLPattern | URLResolver] = [
    path("webhook/", webhooks.receive, name="webhook"),
    path("", include("django_cometchat.api.urls")),
]
