"""Tier 1: the pure retry rules (no clock, no randomness, no I/O)."""

from __future__ import annotations

import dataclasses
import email.utils
import os
import time
from collections.abc import Iterator

import pytest

from llmkit.exceptions import UsageError
from llmkit.transports._retry import RetryPolicy, parse_retry_after, should_retry_status

NOW = 1_700_000_000.0


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (409, True),
        (422, False),
        (429, True),
        (499, False),
        (500, True),
        (502, True),
        (503, True),
        (599, True),
    ],
)
def test_should_retry_status_table(status: int, expected: bool) -> None:
    assert should_retry_status(status, {}) is expected


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (400, {"x-should-retry": "true"}, True),
        (500, {"x-should-retry": "false"}, False),
        (429, {"X-Should-Retry": "false"}, False),
        (400, {"X-SHOULD-RETRY": "true"}, True),
        (500, {"x-should-retry": "maybe"}, True),
        (400, {"x-should-retry": "maybe"}, False),
    ],
)
def test_x_should_retry_overrides_the_status(
    status: int, headers: dict[str, str], expected: bool
) -> None:
    assert should_retry_status(status, headers) is expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"RETRY-AFTER": "0"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After-Ms": "1500.5"}, 1.5005),
        # retry-after-ms is more precise, so it wins
        ({"retry-after-ms": "100", "retry-after": "7"}, 0.1),
        # unparseable ms falls back to retry-after
        ({"retry-after-ms": "soon", "retry-after": "7"}, 7.0),
        ({"retry-after-ms": "soon"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after-ms": "-5"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "61"}, None),
        ({"retry-after": "60"}, 60.0),
        ({"retry-after-ms": "60001"}, None),
        ({"retry-after": http_date(NOW + 30)}, 30.0),
        ({"retry-after": http_date(NOW - 30)}, None),
        ({"retry-after": http_date(NOW + 3600)}, None),
        # RFC 5322 "-0000": UTC without a stated origin (a naive datetime)
        ({"retry-after": "Tue, 14 Nov 2023 22:13:40 -0000"}, 20.0),
        ({"retry-after": "Mon, 99 Foo 2023 25:61:00 GMT"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


@pytest.fixture
def local_time_far_from_utc() -> Iterator[None]:
    """Run the test with the local time zone at UTC+9:30, then restore the machine's.

    On a machine set to UTC, local time and UTC agree, so a date read in the wrong zone
    would go unnoticed. A POSIX ``TZ`` string needs no time zone database.
    """
    if not hasattr(time, "tzset"):  # pragma: no cover - Windows
        pytest.skip("time.tzset() is POSIX only")
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "LMK-9:30"
    time.tzset()
    try:
        assert time.timezone == -34_200  # the zone took effect
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("local_time_far_from_utc")
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (http_date(NOW + 30), 30.0),
        ("Tue, 14 Nov 2023 22:13:40 -0000", 20.0),  # naive: UTC, not local time
        ("Tue, 14 Nov 2023 23:13:40 +0100", 20.0),  # an explicit offset is kept
        ("Tue, 14 Nov 2023 17:13:40 EST", 20.0),
    ],
)
def test_an_http_date_is_read_in_utc_whatever_the_local_time_zone(
    value: str, expected: float
) -> None:
    assert parse_retry_after({"retry-after": value}, now=NOW) == expected


def test_parse_retry_after_limit_is_configurable() -> None:
    assert parse_retry_after({"retry-after": "90"}, max_retry_after=120.0) == 90.0
    assert parse_retry_after({"retry-after": "90"}, max_retry_after=30.0) is None


def test_parse_retry_after_uses_the_real_clock_by_default() -> None:

    delay = parse_retry_after({"retry-after": http_date(time.time() + 30)})
    assert delay is not None
    assert 25.0 < delay <= 30.0


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (10_000, 8.0)],
)
def test_backoff_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    assert RetryPolicy().delay(attempt, random=lambda: 0.0) == expected


def test_the_doubling_stops_after_64_steps() -> None:
    """2**64 backoff steps are beyond any cap; the bound keeps the float from overflowing."""
    policy = RetryPolicy(initial_delay=1.0, max_delay=float("inf"))
    assert policy.delay(64, random=lambda: 0.0) == policy.delay(10**9, random=lambda: 0.0)
    assert policy.delay(10**9, random=lambda: 0.0) == 2.0**64


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 1.0), (0.5, 0.875), (0.999, 0.75025)])
def test_jitter_scales_into_three_quarters_to_one(draw: float, factor: float) -> None:
    policy = RetryPolicy(initial_delay=2.0, max_delay=100.0)
    assert policy.delay(1, None, lambda: draw) == pytest.approx(4.0 * factor)


def test_server_retry_after_wins_over_backoff_and_skips_jitter() -> None:
    policy = RetryPolicy()
    assert policy.delay(0, {"retry-after": "12"}, lambda: 0.9) == 12.0
    assert policy.delay(3, {"retry-after": http_date(NOW + 5)}, lambda: 0.9, now=NOW) == 5.0


def test_absurd_retry_after_falls_back_to_backoff() -> None:
    policy = RetryPolicy(max_retry_after=10.0)
    assert policy.delay(1, {"retry-after": "11"}, lambda: 0.0) == 1.0
    assert policy.delay(1, {"retry-after": "abc"}, lambda: 0.0) == 1.0
    assert policy.delay(1, {}, lambda: 0.0) == 1.0


def test_default_random_stays_in_the_jitter_band() -> None:
    for attempt in range(6):
        nominal = min(0.5 * 2**attempt, 8.0)
        assert 0.75 * nominal <= RetryPolicy().delay(attempt) <= nominal


def test_the_defaults_are_two_retries_half_a_second_doubling_to_eight() -> None:
    """What a transport built without a policy does (the official SDKs' defaults)."""
    policy = RetryPolicy()
    assert (policy.max_retries, policy.initial_delay, policy.max_delay) == (2, 0.5, 8.0)
    assert policy.max_retry_after == 60.0


def test_zero_delays_are_allowed_and_mean_no_wait() -> None:
    policy = RetryPolicy(initial_delay=0.0, max_delay=0.0, max_retry_after=0.0)
    assert policy.delay(3, random=lambda: 0.5) == 0.0
    assert policy.delay(0, {"retry-after": "0"}) == 0.0
    assert policy.delay(0, {"retry-after": "1"}, lambda: 0.0) == 0.0  # over the limit: backoff
    assert RetryPolicy(max_retries=0).max_retries == 0


def test_policy_is_frozen() -> None:

    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().max_retries = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_retries": -1}, "max_retries must be >= 0, got -1"),
        ({"initial_delay": -0.1}, "initial_delay must be >= 0, got -0.1"),
        ({"max_delay": float("nan")}, "max_delay must be >= 0, got nan"),
        ({"max_retry_after": -1.0}, "max_retry_after must be >= 0, got -1.0"),
    ],
)
def test_policy_rejects_negative_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message
