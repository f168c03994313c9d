"""hooks/settings.py: the retry policy, Retry-After, the number checks and hook_params. No sockets, no sleeps."""

from __future__ import annotations

import email.utils

import pytest

from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.hooks.settings import (
    RetryPolicy,
    as_number,
    check_hook_params,
    parse_retry_after,
)

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


@pytest.mark.parametrize(
    ("value", "integer", "result"),
    [("3", True, 3), (3.0, True, 3), ("2.5", False, 2.5), (7, False, 7.0)],
)
def test_numbers_from_extras_arguments_and_hook_params(value, integer, result):
    assert as_number(value, "f", minimum=1, integer=integer) == result


@pytest.mark.parametrize(
    ("value", "integer"),
    [
        (10**400, True),
        (10**400, False),
        (1.9, True),
        ("1.9", True),
        (True, False),
        ("nan", False),
        (None, False),
        (0, True),
    ],
)
def test_bad_numbers_are_named_not_crashed_on(value, integer):
    with pytest.raises(InvalidFieldError, match=r"^f: must be"):
        as_number(value, "f", minimum=1, integer=integer)


def test_hook_params_are_checked_into_json():
    assert check_hook_params(None) == {}
    assert check_hook_params({"timeout": "5", "max_retry_wait": None, "retry_policy": None}) == {
        "timeout": 5.0
    }
    # A policy's fields are all set by the task; a dict sets only its own.
    assert check_hook_params({"retry_policy": RetryPolicy(max_attempts=2)}) == {
        "retry_policy": {"max_attempts": 2, "max_retry_wait": 120.0, "backoff_base": 1.0, "backoff_max": 30.0}
    }
    assert check_hook_params({"retry_policy": {"backoff_base": 0.5}}) == {
        "retry_policy": {"backoff_base": 0.5}
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("timeout", "hook_params: must be a dict of"),
        ([("timeout", 5)], "hook_params: must be a dict of"),
        ({"headers": {"X": "1"}}, "hook_params.headers: is not a hook setting"),
        ({"max_attempts": 10**400}, "hook_params.max_attempts: must be an integer >= 1"),
        ({"max_attempts": 1.9}, "hook_params.max_attempts: must be an integer >= 1"),
        (
            {"retry_policy": RetryPolicy(max_attempts=0)},
            "hook_params.retry_policy.max_attempts: must be an integer",
        ),
        ({"retry_policy": 3}, "hook_params.retry_policy: must be a RetryPolicy or a dict"),
    ],
)
def test_bad_hook_params_are_refused(params, message):
    with pytest.raises(InvalidFieldError) as err:
        check_hook_params(params)
    assert str(err.value).startswith(message)
