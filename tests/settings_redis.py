"""The test settings with the rate budget counted in Redis (db 3), shared by processes."""

from __future__ import annotations

from .settings import *  # noqa: F403

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "cometchat": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/3",
    },
}
COMETCHAT = {
    **COMETCHAT,  # noqa: F405
    "REQUESTS_PER_MINUTE": 5,
    "RATE_LIMIT_WINDOW": 2.0,
    "RATE_LIMIT_CACHE": "cometchat",
    "PAGE_SIZE": 3,
}
