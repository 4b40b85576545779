"""django_cometchat's HTTP surface, listed once: every API route, the webhook, every admin page
and admin action.

``tests/api/test_real_server.py`` and ``tests/api/test_authorization.py`` walk these lists, and
``unlisted()`` names whatever the app serves that is missing here: a route, page or action added
to the app fails both suites until someone decides how it is smoke-tested and who may use it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, reverse

from django_cometchat import urls as app_urls
from django_cometchat.api import urls as api_urls
from tests import FIXTURES

APP = "django_cometchat"

# url name -> HTTP method; paths come from reverse(), so a moved route moves here too.
API_ROUTES: dict[str, str] = {
    "conversation-list": "get",
    "conversation-sync": "post",
    "conversation-detail": "get",
    "conversation-history": "get",
    "conversation-messages": "get",
    "conversation-refresh": "post",
    "syncrun-list": "get",
    "syncrun-detail": "get",
    "not-found": "get",  # any other path under the API: a JSON 404
}

# The routes that serve (or refresh) the signed-in owner's rows: all but the catch-all 404.
OWNED_ROUTES = {name: method for name, method in API_ROUTES.items() if name != "not-found"}

# The app's own routes beside the API: CometChat's webhook, which no user of the site may use
# (its principal is CometChat, with the Basic credentials of WEBHOOK_BASIC_AUTH).
# The webhook, and the same view without its trailing slash (a POST cannot be redirected to it).
WEBHOOK_ROUTES: dict[str, str] = {"webhook": "post", "webhook-unslashed": "post"}
# The credentials tests/settings.py configures for it.
WEBHOOK_CREDENTIALS = ("cometchat", "tests-webhook-password")

ADMIN_MODELS = ("conversation", "conversationsnapshot", "syncrun", "uidbinding", "webhookevent")
# The sync health page: one page of the table-less "health" model, under two names (its own,
# and the changelist's, which the admin's index links to).
HEALTH_MODEL = "health"
HEALTH_PAGES = (f"{APP}_health", f"{APP}_health_changelist")
# Staff reads of messages: a conversation's Messages view (its own permission,
# view_conversation_messages) and the read-only record of those reads (MessageAccess).
MESSAGES_PAGE = f"{APP}_conversation_messages"
AUDIT_MODEL = "messageaccess"
# Django's per-model pages, by url name suffix; "redirect" is the unnamed "<pk>/" pattern that
# forwards to the change page (kept by Django for old links).
MODEL_PAGES = ("changelist", "add", "change", "history", "delete", "redirect")
ACTIONS = ("refresh_from_cometchat", "sync_owners")


def api_path(name: str, *, conversation_id: str = "", pk: Any = None) -> str:
    """The path of an API route; routes that need an id get the one passed."""
    kwargs: dict[str, Any] = {}
    if "conversation-" in name and name not in ("conversation-list", "conversation-sync"):
        kwargs["conversation_id"] = conversation_id
    if name == "syncrun-detail":
        kwargs["pk"] = pk
    if name == "not-found":  # a sync run id that is not a number: no route takes it
        return reverse(f"{APP}:syncrun-list") + "not-a-number/"
    return reverse(f"{APP}:{name}", kwargs=kwargs)


def basic_authorization(
    user: str = WEBHOOK_CREDENTIALS[0], password: str = WEBHOOK_CREDENTIALS[1]
) -> str:
    """An ``Authorization`` header with HTTP Basic credentials (the webhook's by default)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# The published webhook examples' placeholders (API.md §7), and this site's values for them
# (tests/settings.py: APP_ID "testapp", REGION "us").
PLACEHOLDERS = {"<appId>": "testapp", "<region>": "us", "<webhookID>": "tests-webhook"}


def published_webhook(name: str, *, placeholders: bool = False) -> dict[str, Any]:
    """CometChat's published example ``fixtures/webhook.<name>.json`` (API.md §7), delivered to
    this site's app: its ``<appId>``, ``<region>`` and ``<webhookID>`` filled in (left as they
    are with ``placeholders=True``)."""
    body: dict[str, Any] = json.loads((FIXTURES / f"webhook.{name}.json").read_text())
    if not placeholders:
        for key, value in body.items():
            if isinstance(value, str) and value in PLACEHOLDERS:
                body[key] = PLACEHOLDERS[value]
    return body


def webhook_path(route: str = "webhook") -> str:
    return reverse(f"{APP}:{route}")


def admin_path(model: str, page: str, pk: Any = None) -> str:
    if page == "redirect":
        return reverse(f"admin:{APP}_{model}_change", args=(pk,)).removesuffix("change/")
    args = () if page in ("changelist", "add") else (pk,)
    return reverse(f"admin:{APP}_{model}_{page}", args=args)


def _registered() -> dict[str, Any]:
    return {
        model._meta.model_name or "": model_admin
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == APP
    }


def unlisted() -> dict[str, set[str]]:
    """What the app serves that these lists do not name (empty sets when all is covered)."""
    served_routes = {pattern.name or repr(pattern) for pattern in api_urls.urlpatterns}
    # The app's URLconf: its own routes, and the include of the API (walked above); any other
    # include is unlisted too.
    app_routes = {
        pattern.name or repr(pattern) if isinstance(pattern, URLPattern) else repr(pattern)
        for pattern in app_urls.urlpatterns
        if not (isinstance(pattern, URLResolver) and pattern.urlconf_module is api_urls)
    }
    registered = _registered()
    served_pages = set()
    for model_admin in registered.values():
        for pattern in model_admin.get_urls():
            served_pages.add(pattern.name or f"{APP}_{model_admin.opts.model_name}_redirect")
    listed_pages = {f"{APP}_{model}_{page}" for model in ADMIN_MODELS for page in MODEL_PAGES}
    listed_pages.update(HEALTH_PAGES)
    listed_pages.add(MESSAGES_PAGE)
    listed_pages.update(f"{APP}_{AUDIT_MODEL}_{page}" for page in MODEL_PAGES)
    # The actions a superuser is offered: permission-filtered, so Django's delete_selected
    # (refused by the read-only admins) is not among them.
    request = RequestFactory().get("/")
    request.user = get_user_model()(is_superuser=True, is_active=True, is_staff=True)
    served_actions = {
        name for model_admin in registered.values() for name in model_admin.get_actions(request)
    }
    return {
        "api routes": served_routes - set(API_ROUTES),
        "app routes": app_routes - set(WEBHOOK_ROUTES),
        "admin models": set(registered) - {*ADMIN_MODELS, HEALTH_MODEL, AUDIT_MODEL},
        "admin pages": served_pages - listed_pages,
        "admin actions": served_actions - set(ACTIONS),
    }
