"""Mount with ``path("cometchat/", include("django_cometchat.urls"))``."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

app_name = "django_cometchat"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include("django_cometchat.api.urls")),
]
