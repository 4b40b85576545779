"""System checks for ``settings.COMETCHAT``; ``manage.py check`` shows each with a hint.

IDs are stable and never reused:

* ``django_cometchat.E001`` ``APP_ID`` is missing
* ``django_cometchat.E002`` ``API_KEY`` is missing
* ``django_cometchat.E003`` ``REGION`` is invalid
* ``django_cometchat.E004`` ``BASE_URL`` is malformed
* ``django_cometchat.E005`` ``UID_RESOLVER`` cannot be imported or is not callable
* ``django_cometchat.E006`` ``COMETCHAT`` is not a dict, has an unknown key or a bad value
* ``django_cometchat.W001`` ``BASE_URL`` is plain http while ``DEBUG`` is False
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import (
    ENV_FALLBACKS,
    KNOWN_REGIONS,
    base_url_error,
    build_settings,
    missing_key_message,
    raw_settings,
    region_error,
)
from .exceptions import CometChatConfigurationError

SETTINGS_DOC = "See the settings reference in docs/settings.md."


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        raw = raw_settings()
    except CometChatConfigurationError as exc:
        return [Error(str(exc), hint=SETTINGS_DOC, id="django_cometchat.E006")]

    messages: list[CheckMessage] = []
    for key, check_id in (("APP_ID", "E001"), ("API_KEY", "E002")):
        if raw.get(key) in (None, ""):
            messages.append(
                Error(
                    missing_key_message(key),
                    hint=(
                        f'COMETCHAT = {{"{key}": ..., ...}} in settings.py, or export '
                        f"{ENV_FALLBACKS[key]}. The REST API key needs fullAccess scope."
                        if key == "API_KEY"
                        else f'COMETCHAT = {{"{key}": ..., ...}} in settings.py, or export '
                        f"{ENV_FALLBACKS[key]}. It is shown in the CometChat dashboard."
                    ),
                    id=f"django_cometchat.{check_id}",
                )
            )

    if problem := region_error(raw["REGION"]):
        messages.append(
            Error(
                f'COMETCHAT["REGION"]: {problem}',
                hint=f"CometChat regions today: {', '.join(KNOWN_REGIONS)}.",
                id="django_cometchat.E003",
            )
        )

    base_url = raw["BASE_URL"]
    if base_url not in (None, ""):
        if problem := base_url_error(base_url):
            messages.append(
                Error(
                    f'COMETCHAT["BASE_URL"]: {problem}',
                    hint="Leave BASE_URL unset to use https://{APP_ID}.api-{REGION}.cometchat.io/v3.",
                    id="django_cometchat.E004",
                )
            )
        elif urlsplit(base_url).scheme == "http" and not settings.DEBUG:
            messages.append(
                Warning(
                    f'COMETCHAT["BASE_URL"] is plain http ({base_url}) while DEBUG is False: '
                    "the API key would travel unencrypted.",
                    hint="Use an https:// URL outside local development and tests.",
                    id="django_cometchat.W001",
                )
            )

    resolver = raw["UID_RESOLVER"]
    if resolver not in (None, ""):
        messages.extend(_check_resolver(resolver))

    if not any(m.is_serious() for m in messages):
        # Everything above passed: let the full validation catch what remains (types, ranges).
        try:
            build_settings(raw)
        except CometChatConfigurationError as exc:
            messages.append(Error(str(exc), hint=SETTINGS_DOC, id="django_cometchat.E006"))
    return messages


def _check_resolver(path: Any) -> list[CheckMessage]:
    from django.utils.module_loading import import_string

    hint = 'UID_RESOLVER is a dotted path to a callable user -> uid, e.g. "myapp.chat.uid_for".'
    if not isinstance(path, str):
        return [
            Error(
                'COMETCHAT["UID_RESOLVER"] must be a string', hint=hint, id="django_cometchat.E005"
            )
        ]
    try:
        resolver = import_string(path)
    except ImportError as exc:
        return [
            Error(
                f'COMETCHAT["UID_RESOLVER"] = {path!r} cannot be imported: {exc}',
                hint=hint,
                id="django_cometchat.E005",
            )
        ]
    if not callable(resolver):
        return [
            Error(
                f'COMETCHAT["UID_RESOLVER"] = {path!r} is not callable',
                hint=hint,
                id="django_cometchat.E005",
            )
        ]
    return []
