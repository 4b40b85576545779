"""Mount with ``path("cometchat/", include("django_cometchat.urls"))``."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

app_name = "django_cometchat"

urlpatterns: list[URLPattern | URLResolver] = []
