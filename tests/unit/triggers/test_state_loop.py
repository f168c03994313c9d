"""
The trigger's polling loop on a fake clock and a fake hook: pacing, Retry-After, the deadline and
each way it ends, without sockets or real sleeps.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from airflow_provider_fluents_tines.exceptions import ApiRequestError
from airflow_provider_fluents_tines.hooks.base import ApiSettings, RetryPolicy
from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger

START = 1_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _error(status: int | None, *, retryable: bool, retry_after: float | None = None) -> ApiRequestError:
    return ApiRequestError(
        service="Tines",
        method="GET",
        path="/api/v1/actions/7",
        http_status=status,
        api_message="x",
        retryable=retryable,
        retry_after=retry_after,
    )


class FakeHook:
    """Answers each poll from a script: a dict (the object) or an exception; records when it was asked."""

    def __init__(self, clock: FakeClock, answers: list[Any]) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.polled_at: list[float] = []
        self.settings = ApiSettings(
            base_url="https://t.example",
            api_key="k" * 12,
            timeout=5.0,
            retry_policy=RetryPolicy(backoff_max=8.0),
        )

    @asynccontextmanager
    async def async_session(self, settings):
        yield object()

    async def aget_object(self, session, settings, kind, object_id, *, timeout=None):
        self.polled_at.append(self.clock.now)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def run_trigger(answers: list[Any], **kwargs: Any) -> tuple[dict[str, Any], FakeHook, FakeClock]:
    clock = FakeClock()
    hook = FakeHook(clock, answers)
    params = {
        "conn_id": "tines_default",
        "object_kind": "tines.action",
        "object_id": 7,
        "expected": {"disabled": True},
        "end_time": START + 60,
        "poke_interval": 10.0,
        **kwargs,
    }
    trigger = ObjectStateTrigger(**params)
    trigger._now = clock.time
    trigger._sleep = clock.sleep
    trigger._prepare_hook = lambda: hook

    async def first() -> dict[str, Any]:
        events = [event async for event in trigger.run()]
        assert len(events) == 1  # exactly one event, then the generator ends
        return events[0].payload

    return asyncio.run(first()), hook, clock


def test_polls_every_interval_until_the_object_matches():
    event, hook, _ = run_trigger([{"disabled": False}, {"disabled": False}, {"disabled": True, "id": 7}])
    assert event == {"status": "success", "object": {"disabled": True, "id": 7}}
    assert hook.polled_at == [START, START + 10, START + 20]


def test_exponential_backoff_doubles_up_to_its_cap():
    _, hook, _ = run_trigger(
        [{"disabled": False}] * 5 + [{"disabled": True}],
        exponential_backoff=True,
        poke_interval=2.0,
        max_interval=6.0,
        end_time=START + 1000,
    )
    gaps = [b - a for a, b in zip(hook.polled_at, hook.polled_at[1:], strict=False)]
    assert gaps == [2.0, 4.0, 6.0, 6.0, 6.0]


def test_retry_after_stretches_the_pause_after_a_429():
    _, hook, _ = run_trigger(
        [_error(429, retryable=True, retry_after=25.0), {"disabled": True}], end_time=START + 100
    )
    assert hook.polled_at == [START, START + 25]


def test_times_out_at_its_deadline_with_what_it_last_saw_and_no_late_poll():
    event, hook, clock = run_trigger([{"disabled": False, "name": "n"}], end_time=START + 25)
    assert event["status"] == "timeout"
    assert event["diff"] == [{"field": "disabled", "current": False, "requested": True}]
    assert event["wait_log"]["differences"] == event["diff"]
    assert hook.polled_at == [START, START + 10, START + 20]  # none at or after the deadline
    assert clock.now == START + 25


def test_a_missing_object_is_waited_for_unless_told_otherwise():
    missing = _error(404, retryable=False)
    event, hook, _ = run_trigger([missing, {"disabled": True}])
    assert event["status"] == "success" and len(hook.polled_at) == 2
    event, hook, _ = run_trigger([missing], fail_on_missing=True)
    assert event["status"] == "failed" and event["http_status"] == 404 and event["retryable"] is False
    assert len(hook.polled_at) == 1


def test_a_client_error_ends_the_wait_at_once():
    event, hook, _ = run_trigger([_error(403, retryable=False)])
    assert (event["status"], event["http_status"], len(hook.polled_at)) == ("failed", 403, 1)


def test_a_broken_hook_ends_in_one_retryable_failure():
    clock = FakeClock()
    trigger = ObjectStateTrigger(
        conn_id="tines_default",
        object_kind="tines.action",
        object_id=7,
        expected={"a": 1},
        end_time=START + 5,
    )
    trigger._now = clock.time
    trigger._sleep = clock.sleep

    def broken():
        raise RuntimeError("no connection")

    trigger._prepare_hook = broken

    async def first():
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(first())
    assert event.payload["status"] == "failed" and event.payload["retryable"] is True
    assert "no connection" in event.payload["message"]
