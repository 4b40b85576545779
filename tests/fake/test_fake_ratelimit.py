"""The fake's rate limit behaves like CometChat's (API.md §0.2, §5.4): a budget per calendar
minute for the whole app, the reset time only with the 429."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import requests

from django_cometchat.testing import FakeCometChat, Fault
from tests.fake.test_fake_server import call, error_of, settle_in_window

RESET_AND_RETRY = {"x-rate-limit-reset", "x-ratelimit-reset", "retry-after"}


@pytest.fixture
def fake(cometchat_fake_server: FakeCometChat) -> Iterator[FakeCometChat]:
    fake = cometchat_fake_server
    fake.reset()
    fake.add_user("alice")
    yield fake
    fake.reset()


def rate_headers(response: requests.Response) -> set[str]:
    return {name.lower() for name in response.headers if "rate" in name.lower()} | (
        {"retry-after"} if "Retry-After" in response.headers else set()
    )


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("hyphen", {"x-rate-limit", "x-rate-limit-remaining"}),
        ("compact", {"x-ratelimit-limit", "x-ratelimit-remaining"}),
        (
            "both",
            {
                "x-rate-limit",
                "x-rate-limit-remaining",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
            },
        ),
    ],
)
def test_normal_answers_carry_only_limit_and_remaining(
    fake: FakeCometChat, style: str, expected: set[str]
) -> None:
    fake.configure(header_style=style)  # type: ignore[arg-type]
    for budget in (None, 100):
        fake.configure(rate_limit_per_minute=budget)
        ok = call(fake, "/users")
        assert ok.status_code == 200
        assert rate_headers(ok) == expected
        missing = call(fake, "/users/ghost")  # an error answer is no different
        assert missing.status_code == 404
        assert rate_headers(missing) == expected


def test_reset_header_always_is_an_opt_in(fake: FakeCometChat) -> None:
    assert fake.options.reset_header == "429"
    fake.configure(reset_header="always")
    settle_in_window(60, 2)
    response = call(fake, "/users")
    received = fake.requests[-1].at
    assert int(response.headers["X-Rate-Limit-Reset"]) == (math.floor(received / 60) + 1) * 60
    assert "Retry-After" not in response.headers
    fake.reset()
    assert str(fake.options.reset_header) == "429"  # str(): mypy narrowed it to "always" above
    assert "X-Rate-Limit-Reset" not in call(fake, "/users").headers
    with pytest.raises(ValueError, match="reset_header"):
        fake.configure(reset_header="sometimes")  # type: ignore[arg-type]
    with FakeCometChat(reset_header="always", header_style="compact") as other:
        assert "X-RateLimit-Reset" in call(other, "/users").headers


def test_429_points_at_the_end_of_the_calendar_minute(fake: FakeCometChat) -> None:
    settle_in_window(60, 3)
    fake.configure(rate_limit_per_minute=2)
    assert [call(fake, "/users").status_code for _ in range(2)] == [200, 200]
    limited = call(fake, "/users")
    assert limited.status_code == 429
    assert error_of(limited)["code"] == "ERR_TOO_MANY_REQUESTS"
    received = fake.requests[-1].at
    minute_end = (math.floor(received / 60) + 1) * 60  # the next calendar minute
    assert int(limited.headers["X-Rate-Limit-Reset"]) == minute_end
    assert int(limited.headers["Retry-After"]) == max(1, math.ceil(minute_end - received))
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"
    assert limited.headers["X-Rate-Limit"] == "2"


def test_windows_are_aligned_to_the_epoch_not_to_the_first_request() -> None:
    window = 0.5
    with FakeCometChat(rate_limit_per_minute=2, rate_limit_window=window) as fake:
        # Start in the middle of a window: a window opened by the first request would still
        # be running after the aligned one has ended.
        phase = time.time() % window
        time.sleep((0.25 - phase) % window)
        statuses = [call(fake, "/users").status_code for _ in range(3)]
        first_window = math.floor(fake.requests[0].at / window)
        assert math.floor(fake.requests[2].at / window) == first_window
        assert statuses == [200, 200, 429]
        time.sleep((first_window + 1) * window - time.time() + 0.05)  # just into the next one
        assert call(fake, "/users").status_code == 200


def test_the_log_can_be_bucketed_by_window() -> None:
    window = 0.2
    budget = 2
    with FakeCometChat(rate_limit_per_minute=budget, rate_limit_window=window) as fake:
        started = time.time()
        with requests.Session() as session:
            while time.time() - started < 1.0:
                call(fake, "/users", session=session)
                time.sleep(0.02)
        buckets: dict[int, list[int | None]] = {}
        for record in fake.requests:
            buckets.setdefault(math.floor(record.at / window), []).append(record.status)
        assert len(buckets) >= 4
        for statuses in buckets.values():
            allowed = min(budget, len(statuses))
            assert statuses == [200] * allowed + [429] * (len(statuses) - allowed)


def test_recorded_requests_know_when_they_arrived(fake: FakeCometChat) -> None:
    before = time.time()
    call(fake, "/users")
    fake.delay_next(0.2)
    call(fake, "/users")
    after = time.time()
    first, second = fake.requests
    assert before <= first.at <= second.at <= after
    assert after - second.at >= 0.2  # received before the delay, not when answered


def test_refused_keys_do_not_use_the_budget(fake: FakeCometChat) -> None:
    settle_in_window(60, 2)
    fake.configure(rate_limit_per_minute=1)
    anonymous = requests.get(f"{fake.base_url}/users", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.headers["X-Rate-Limit-Remaining"] == "1"
    assert not rate_headers(anonymous) & RESET_AND_RETRY
    assert call(fake, "/users").status_code == 200
    assert call(fake, "/users").status_code == 429


# -- 429 faults ----------------------------------------------------------------------------------


def test_a_429_status_fault_adds_neither_retry_after_nor_reset(fake: FakeCometChat) -> None:
    fake.fail_next(status=429)
    response = call(fake, "/users")
    assert response.status_code == 429
    assert error_of(response)["code"] == "ERR_TOO_MANY_REQUESTS"
    assert rate_headers(response) == {"x-rate-limit", "x-rate-limit-remaining"}


@pytest.mark.parametrize("fault", [{"status": 503}, {"kind": "truncate"}])
def test_a_fault_past_a_spent_budget_carries_no_refusal_headers(
    fake: FakeCometChat, fault: dict[str, object]
) -> None:
    fake.configure(rate_limit_per_minute=1, rate_limit_window=60)
    settle_in_window(60, needed=5)
    call(fake, "/users")  # the window's one request
    if "status" in fault:
        fake.fail_next(status=int(fault["status"]))  # type: ignore[call-overload]
    else:
        fake.inject(Fault("truncate"))
    response = call(fake, "/users")
    assert response.status_code == fault.get("status", 200)
    assert rate_headers(response) == {"x-rate-limit", "x-rate-limit-remaining"}


def test_a_429_status_fault_carries_exactly_the_headers_given(fake: FakeCometChat) -> None:
    fake.fail_next(status=429, headers={"Retry-After": "3"})
    fake.fail_next(status=429, headers={"X-Rate-Limit-Reset": "1700000000"})
    only_retry = call(fake, "/users")
    only_reset = call(fake, "/users")
    assert only_retry.headers["Retry-After"] == "3"
    assert not rate_headers(only_retry) & {"x-rate-limit-reset", "x-ratelimit-reset"}
    assert only_reset.headers["X-Rate-Limit-Reset"] == "1700000000"
    assert "Retry-After" not in only_reset.headers


def test_rate_limit_next_looks_like_the_limiters_429(fake: FakeCometChat) -> None:
    fake.configure(header_style="both")
    before = math.ceil(time.time())
    fake.rate_limit_next(retry_after=7)
    response = call(fake, "/users")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    for reset, remaining in [
        ("X-Rate-Limit-Reset", "X-Rate-Limit-Remaining"),
        ("X-RateLimit-Reset", "X-RateLimit-Remaining"),
    ]:
        assert before + 7 <= int(response.headers[reset]) <= math.ceil(time.time()) + 7
        assert response.headers[remaining] == "0"
