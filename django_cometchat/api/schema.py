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

SYNC_FILTERS = [
    OpenApiParameter(
        "conversation_type",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        enum=["user", "group"],
        description="Only one-to-one or only group conversations.",
    ),
    OpenApiParameter(
        "user_tags",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        description="Comma-separated tags: only conversations with users carrying one of them.",
    ),
    OpenApiParameter(
        "group_tags",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        description="Comma-separated tags: only conversations with groups carrying one of them.",
    ),
]

_ERRORS = {
    400: "ERR_NO_UID: the account is not linked to a CometChat user; ERR_INVALID_ID: an "
    "invalid conversation id; ERR_INVALID_REQUEST: a bad query parameter or cursor.",
    401: "Not authenticated (with token authentication first in the host's settings).",
    403: "Not authenticated (with session authentication first), or a failed CSRF check.",
    404: "No such row among the user's own (another user's rows are never revealed); "
    "ERR_NOT_FOUND: CometChat has no such conversation for the user; ERR_UID_NOT_FOUND: the "
    "user's CometChat user does not exist.",
    409: "ERR_UID_TAKEN: the account's CometChat user belongs to another account of the site.",
    429: "The cometchat_refresh throttle: too many refreshes; see Retry-After.",
    502: "CometChat failed (5xx), answered with a malformed body, refused the request, or "
    "refused this site's API key (the integration is misconfigured).",
    503: "CometChat is rate-limiting this site (see Retry-After), could not be reached, the "
    "integration is not configured, the database is busy (see Retry-After), or "
    "ERR_QUEUE_UNAVAILABLE: the site's task queue refused the work.",
    504: "CometChat did not answer within the request's deadline.",
}

READ_ERRORS = (400, 401, 403, 404, 409)
REFRESH_ERRORS = (400, 401, 403, 404, 409, 429, 502, 503, 504)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {
        status: OpenApiResponse(ErrorSerializer, description=_ERRORS[status]) for status in statuses
    }
