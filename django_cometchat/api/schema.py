"""OpenAPI pieces shared by the views: the conversation id parameter and the error responses."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from .serializers import ErrorSerializer

TAG = "cometchat"

CONVERSATION_ID = OpenApiParameter(
    "conversation_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="CometChat's conversation id, e.g. `alice_user_bob` or `group_book-club` "
    "(letters, digits, '-' and '_'). Anything else is refused with 400 ERR_INVALID_ID.",
    pattern=r"^[A-Za-z0-9_-]{1,206}$",
)

_ERRORS = {
    400: "ERR_NO_UID: the account has no CometChat UID (UID_RESOLVER gave none or an invalid "
    "one); ERR_INVALID_ID: an invalid conversation id; ERR_INVALID_REQUEST: a bad query "
    "parameter.",
    401: "Not authenticated (with token authentication first in the host's settings).",
    403: "Not authenticated (with session authentication first), or a failed CSRF check.",
    404: "No such row among the user's own (another user's rows are never revealed); upstream, "
    "CometChat's ERR_*_NOT_FOUND or ERR_CONVERSATION_NOT_ACCESSIBLE.",
    429: "The cometchat_refresh throttle: too many refreshes; see Retry-After.",
    502: "CometChat failed (5xx), answered with a malformed body, or refused this site's "
    "API key (the integration is misconfigured).",
    503: "CometChat is rate-limiting this site (see Retry-After), could not be reached, or "
    "the integration is not configured.",
    504: "CometChat did not answer in time.",
}

READ_ERRORS = (400, 401, 403, 404)
REFRESH_ERRORS = (400, 401, 403, 404, 429, 502, 503, 504)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {
        status: OpenApiResponse(ErrorSerializer, description=_ERRORS[status]) for status in statuses
    }
