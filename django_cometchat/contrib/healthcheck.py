"""django-health-check checks for django-cometchat (``pip install django-cometchat[healthcheck]``).

For load balancers and uptime monitors: add the checks to django-health-check's view (version 4,
whose checks are listed where the view is mounted)::

    from health_check.views import HealthCheckView
    from django_cometchat.contrib.healthcheck import CHECKS

    urlpatterns = [
        path("ht/", HealthCheckView.as_view(checks=["health_check.checks.Database", *CHECKS])),
    ]

* :class:`RateBudgetCache` fails when the shared rate budget's cache (``RATE_LIMIT_CACHE``)
  cannot be read: the budget then lets every request through, and processes stop counting
  each other's requests. Nothing to check when the budget is off.
* :class:`SyncFreshness` fails when no sync succeeded within ``HEALTH_MAX_SYNC_AGE`` seconds
  while owners exist (sync runs or stored conversations): the workers or the cron stopped, or
  CometChat refuses every owner.
* :class:`WebhookBacklog` fails when a webhook event has waited (received, not yet processed)
  longer than ``HEALTH_MAX_EVENT_WAIT`` seconds: no worker takes the queue.

Each reads one indexed row at most. A failure says what is wrong and for how long; never a UID,
a key or a setting's value beyond the thresholds.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from django_cometchat.budget import RateBudget
from django_cometchat.conf import CometChatSettings, get_settings
from django_cometchat.exceptions import CometChatConfigurationError
from django_cometchat.models import Conversation, SyncRun, WebhookEvent

__all__ = ["CHECKS", "RateBudgetCache", "SyncFreshness", "WebhookBacklog"]

# Statuses of an event that waits for a worker.
WAITING = (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.DEFERRED)


class _CometChatCheck(HealthCheck):  # type: ignore[misc]  # untyped: django-health-check
    """Runs :meth:`probe` on Django's sync side (the ORM and the cache clients are sync; on
    the thread the view runs on when it can, so a test's transaction is seen)."""

    async def run(self) -> None:
        await sync_to_async(self.probe)()

    def probe(self) -> None:
        raise NotImplementedError


def _settings() -> CometChatSettings:
    try:
        return get_settings()
    except CometChatConfigurationError as exc:  # the text names the key, never a secret
        raise ServiceUnavailable(f"the COMETCHAT settings are invalid: {exc}") from exc


@dataclasses.dataclass
class RateBudgetCache(_CometChatCheck):
    """The shared rate budget's cache answers."""

    def probe(self) -> None:
        settings = _settings()
        budget = RateBudget.for_settings(settings)
        if budget is None:  # REQUESTS_PER_MINUTE None: no budget, no cache to read
            return
        try:
            budget.used()
        except Exception as exc:
            raise ServiceUnavailable(
                f'the rate budget\'s cache COMETCHAT["RATE_LIMIT_CACHE"] = '
                f"{settings.rate_limit_cache!r} cannot be read ({type(exc).__name__}): every "
                "process sends without counting"
            ) from exc


@dataclasses.dataclass
class SyncFreshness(_CometChatCheck):
    """A sync succeeded within ``HEALTH_MAX_SYNC_AGE`` (when there is anyone to sync)."""

    def probe(self) -> None:
        max_age = _settings().health_max_sync_age
        if max_age is None:
            return
        # The latest success by start (the status index); its end is what counts.
        latest = (
            SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED)
            .order_by("-started_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        now = timezone.now()
        if latest is not None and latest >= now - timedelta(seconds=max_age):
            return
        if latest is None and not (SyncRun.objects.exists() or Conversation.objects.exists()):
            return  # a new site: no owner yet
        since = "ever" if latest is None else f"since {latest:%Y-%m-%d %H:%M:%S %Z}"
        raise ServiceUnavailable(
            f"no CometChat sync succeeded {since} (more than "
            f'COMETCHAT["HEALTH_MAX_SYNC_AGE"] = {max_age:g} s): are the workers and the cron '
            "running? The latest failed runs tell why"
        )


@dataclasses.dataclass
class WebhookBacklog(_CometChatCheck):
    """No webhook event waits longer than ``HEALTH_MAX_EVENT_WAIT``."""

    def probe(self) -> None:
        max_wait = _settings().health_max_event_wait
        if max_wait is None:
            return
        cutoff = timezone.now() - timedelta(seconds=max_wait)
        oldest = (
            WebhookEvent.objects.filter(status__in=WAITING, received_at__lt=cutoff)
            .order_by("received_at")
            .values_list("received_at", flat=True)
            .first()
        )
        if oldest is None:
            return
        waited = (timezone.now() - oldest).total_seconds()
        raise ServiceUnavailable(
            f"a CometChat webhook event has waited {waited:.0f} s to be processed (more than "
            f'COMETCHAT["HEALTH_MAX_EVENT_WAIT"] = {max_wait:g} s): is a task worker running?'
        )


# Dotted paths, for HealthCheckView.as_view(checks=[...]).
CHECKS = tuple(
    f"{__name__}.{check.__name__}" for check in (RateBudgetCache, SyncFreshness, WebhookBacklog)
)
