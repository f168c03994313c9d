"""The retry policy and Retry-After parsing: pure functions of their inputs. No sockets, no sleeps."""

from __future__ import annotations

import email.utils

import pytest

from airflow_provider_fluents_tines.hooks.base import RetryPolicy, parse_retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


def test_backoff_doubles_with_jitter_up_to_its_cap():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=5.0)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)):
        for _ in range(20):
            assert ceiling / 2 <= policy.backoff(failures) <= ceiling


def test_the_servers_retry_after_wins_over_the_backoff():
    assert RetryPolicy().delay(3, 0.25) == 0.25
    assert 0.5 <= RetryPolicy().delay(1, None) <= 1.0


def test_which_statuses_are_transient():
    assert [
        s for s in (400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504) if RetryPolicy.is_transient(s)
    ] == [
        408,
        429,
        500,
        502,
        503,
        504,
    ]
