"""The suite's URLs plus the sign-in views docs/api.md tells a site to mount for its users."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token

from .urls import urlpatterns as suite_urlpatterns

urlpatterns = [
    *suite_urlpatterns,
    path("api-auth/", include("rest_framework.urls")),
    path("api-token/", obtain_auth_token),
]
