from __future__ import annotations

from django.apps import AppConfig


class CometChatPrometheusConfig(AppConfig):
    name = "django_cometchat.contrib.prometheus"
    label = "django_cometchat_prometheus"
    verbose_name = "CometChat metrics"

    def ready(self) -> None:
        from . import metrics

        metrics.install()
