"""Minimal settings for the test suite (separate from example_project on purpose).

``COMETCHAT_TEST_DB=postgres`` switches to the PostgreSQL at 127.0.0.1:5432.
"""

from __future__ import annotations

import os

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

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
    "django_cometchat",
    # The optional integrations, so that their tests run in every cell
    # (tests/operations/test_operations.py).
    "django_cometchat.contrib.prometheus",
    "health_check",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
STATIC_URL = "static/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"cometchat_refresh": "1000/min"},
}

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

if os.environ.get("COMETCHAT_TEST_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "NAME": os.environ.get("PGDATABASE", "test"),
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

# Tests point BASE_URL at the fake server through the cometchat_fake fixture. The rate budget
# is on (its code runs in every test) but never binds, except where a test lowers it.
COMETCHAT = {
    "APP_ID": "testapp",
    "REGION": "us",
    "API_KEY": "test-api-key-not-secret",
    "REQUESTS_PER_MINUTE": 1_000_000,
    # CometChat's webhook (tests/webhooks/test_webhooks.py); the tests of a missing one override it.
    "WEBHOOK_BASIC_AUTH": ["cometchat:tests-webhook-password"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "django-cometchat API",
    "DESCRIPTION": "Conversations mirrored from CometChat, for the signed-in user only.",
    "VERSION": "0.1",
}
