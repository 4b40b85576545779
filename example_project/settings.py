"""Settings of the example project: SQLite by default, ``DATABASE_URL`` for PostgreSQL.

CometChat credentials come from the environment (``COMETCHAT_APP_ID``, ``COMETCHAT_REGION``,
``COMETCHAT_API_KEY``, ``COMETCHAT_BASE_URL``): ``scripts/demo`` points them at the bundled fake
server unless a real app's are set.

Safe by default outside the demo: ``DEBUG`` is off unless ``DJANGO_DEBUG=1``, and without
``DJANGO_SECRET_KEY`` each process makes a random key (sessions do not survive a restart; set the
variable to keep them). ``scripts/demo`` sets both for local use.

``EXAMPLE_TASKS=db`` (``scripts/demo --worker``) queues background work in this database with
django-tasks-db, for ``manage.py db_worker`` to run; unset, tasks run inline as they are called.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or get_random_secret_key()
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc assets served locally
    "django_cometchat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
STATIC_URL = "static/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database(url: str | None) -> dict[str, object]:
    if not url:
        path = os.environ.get("EXAMPLE_SQLITE_PATH", BASE_DIR / "example.sqlite3")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": {
                # Concurrent refreshes: take the write lock when a transaction starts (no
                # deadlock between two readers that both want to write), wait up to 20 s for
                # it, and let readers go on while one writes (WAL). A lock that still times out
                # is a 503 with Retry-After from the API, never a 500.
                "transaction_mode": "IMMEDIATE",
                "timeout": float(os.environ.get("EXAMPLE_SQLITE_TIMEOUT", "20")),
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {"default": _database(os.environ.get("DATABASE_URL"))}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"cometchat_refresh": "30/min"},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "django-cometchat example API",
    "DESCRIPTION": "Conversations mirrored from CometChat, per signed-in user.",
    "VERSION": "1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGIN_URL = "/admin/login/"

# Background work: with EXAMPLE_TASKS=db the API answers 202 and a `manage.py db_worker` runs
# the syncs (docs/tasks.md); without it Django's immediate backend runs them inline.
_tasks = os.environ.get("EXAMPLE_TASKS", "")
if _tasks == "db":
    INSTALLED_APPS.append("django_tasks_db")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
elif _tasks:
    raise ImproperlyConfigured(f"EXAMPLE_TASKS must be 'db' or unset, not {_tasks!r}")

# Everything else falls back to COMETCHAT_* environment variables.
COMETCHAT = {
    # Demo logins are named after their CometChat UIDs.
    "UID_RESOLVER": "example_project.chat.uid_for",
    # The webhook's Basic credentials (docs/webhooks.md): "user:password" entries separated by
    # spaces, from the environment. Unset, the webhook refuses every delivery (I001 under
    # `check --deploy` says so).
    "WEBHOOK_BASIC_AUTH": os.environ.get("EXAMPLE_WEBHOOK_BASIC_AUTH", "").split(),
}
