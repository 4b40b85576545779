from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from health_check.views import HealthCheckView

from django_cometchat.contrib.healthcheck import CHECKS

urlpatterns = [
    path("admin/", admin.site.urls),
    path("cometchat/", include("django_cometchat.urls")),
    # django-health-check's own view with the package's checks
    # (tests/operations/test_healthcheck.py).
    path("health/", HealthCheckView.as_view(checks=CHECKS), name="health"),
]
