"""The ``cometchat_refresh`` throttle: every refresh calls CometChat on the user's behalf."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from ..conf import DEFAULT_REFRESH_RATE, REFRESH_THROTTLE_SCOPE

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class RefreshRateThrottle(ScopedRateThrottle):
    """Per user, scope ``cometchat_refresh``; ``10/min`` unless the host sets its own rate.

    - The scope is fixed here rather than read from ``view.throttle_scope``: a host that lists
      DRF's ``ScopedRateThrottle`` globally then neither counts refreshes twice nor crashes on
      a scope it has no rate for.
    - A missing rate falls back to the default instead of DRF's ImproperlyConfigured.
    - Rates are read per request (``SimpleRateThrottle.THROTTLE_RATES`` is bound at import), so
      ``override_settings`` works.
    """

    scope = REFRESH_THROTTLE_SCOPE

    def allow_request(self, request: Request, view: APIView) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return SimpleRateThrottle.allow_request(self, request, view)

    def get_rate(self) -> str | None:
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        rate = rates.get(self.scope, DEFAULT_REFRESH_RATE)
        return None if rate is None else str(rate)
