"""A task's hook_params: checked when the hook is built (before any request), carried to the trigger."""

from __future__ import annotations

import json

import pytest

from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.hooks.fluents import FluentsHook
from airflow_provider_fluents_tines.hooks.settings import RetryPolicy, check_hook_params
from airflow_provider_fluents_tines.hooks.tines import TinesHook


def test_hook_params_become_the_hooks_settings():
    hook = TinesHook.from_hook_params(
        "tines_x",
        {"timeout": "5", "max_attempts": 2, "retry_policy": {"backoff_base": 0.5, "max_retry_wait": 9}},
    )
    assert hook.conn_id == "tines_x"
    assert hook._overrides == {"timeout": 5.0, "max_attempts": 2, "max_retry_wait": None}
    assert hook._retry_policy == RetryPolicy(backoff_base=0.5, max_retry_wait=9.0)
    assert hook._policy_fields_given == {"backoff_base", "max_retry_wait"}
    assert FluentsHook.from_hook_params("f", None)._retry_policy == RetryPolicy()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"headers": {"X": "1"}}, "hook_params.headers: is not a hook setting"),
        ({"timeout": 0}, "hook_params.timeout: must be a number >= 0.001, got 0"),
        ({"max_attempts": "many"}, "hook_params.max_attempts: must be an integer >= 1, got 'many'"),
        ({"max_retry_wait": float("nan")}, "hook_params.max_retry_wait: must be a number >= 0"),
        ({"retry_policy": 3}, "hook_params.retry_policy: must be a RetryPolicy or a dict"),
        ({"retry_policy": {"jitter": 1}}, "hook_params.retry_policy.jitter: is not a field"),
        (
            {"retry_policy": {"backoff_max": -1}},
            "hook_params.retry_policy.backoff_max: must be a number >= 0",
        ),
    ],
)
def test_bad_hook_params_are_named(params, message):
    with pytest.raises(InvalidFieldError) as err:
        TinesHook.from_hook_params("tines_x", params)
    assert str(err.value).startswith(message)


def test_arguments_are_checked_when_the_hook_is_built():
    with pytest.raises(InvalidFieldError, match=r"^max_attempts: must be an integer >= 1"):
        TinesHook(max_attempts=0)


def test_trigger_hook_params_are_json():
    params = {"timeout": 3, "retry_policy": RetryPolicy(max_attempts=2)}
    carried = check_hook_params(params)
    assert json.loads(json.dumps(carried)) == carried
    assert TinesHook.from_hook_params("t", carried)._retry_policy == RetryPolicy(max_attempts=2)
