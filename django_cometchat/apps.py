from __future__ import annotations

from django.apps import AppConfig


class CometChatConfig(AppConfig):
    name = "django_cometchat"
    label = "django_cometchat"
    verbose_name = "CometChat"
    # Pinned so a host's DEFAULT_AUTO_FIELD never creates a phantom migration here.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import reload_settings

        setting_changed.connect(reload_settings, dispatch_uid="django_cometchat.reload_settings")
