"""
Sensors and their trigger against the sandbox (visibility lag, faults, journal as the request counter).

Every trigger run is wrapped in asyncio.wait_for: dag.test() and a bare trigger enforce no deadline
of their own, so a bug must fail the test, never hang it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from dataclasses import asdict
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_fluents_tines.exceptions import ApiClientError, InvalidFieldError
from airflow_provider_fluents_tines.hooks.base import RetryPolicy
from airflow_provider_fluents_tines.hooks.fluents import FluentsHook
from airflow_provider_fluents_tines.hooks.tines import TinesHook
from airflow_provider_fluents_tines.objects.fluents import FLUENTS_NUMBER
from airflow_provider_fluents_tines.sandbox import DEFAULT_FLUENTS_TOKEN, DEFAULT_TINES_TOKEN, default_seed
from airflow_provider_fluents_tines.sensors.fluents import FluentsActionSensor, FluentsNumberSensor
from airflow_provider_fluents_tines.sensors.tines import TinesActionSensor
from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger
from airflow_provider_fluents_tines.version_compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from .dag_runner import run_dag, task_states, xcom

NUMBER = "+14155550101"


def first_event(trigger: ObjectStateTrigger, deadline: float = 20.0) -> dict:
    async def first():
        return await asyncio.wait_for(trigger.run().__anext__(), timeout=deadline)

    return asyncio.run(first()).payload


def tines_trigger(action_id=90005, expected=None, **kwargs) -> ObjectStateTrigger:
    kwargs.setdefault("end_time", time.time() + 10)
    kwargs.setdefault("poke_interval", 0.1)
    return ObjectStateTrigger(
        conn_id="tines_default",
        object_kind="tines.action",
        object_id=action_id,
        expected=expected or {"disabled": False},
        **kwargs,
    )


def gets(sandbox, path="/api/v1/actions/*"):
    return sandbox.state.journal(method="GET", path=path)


def reappear_later(state, seconds: float) -> list[int]:
    """Reset to the default seed after ``seconds``; returns (filled later) the GETs answered before."""
    before: list[int] = []

    def appear():
        before.append(len(state.journal(method="GET")))
        state.reset()

    threading.Timer(seconds, appear).start()
    return before


# ---- poke mode -------------------------------------------------------------------------------------


def test_waits_through_the_visibility_lag_and_returns_the_object(fluents_tines_sandbox, capsys):
    fluents_tines_sandbox.state.configure(visibility_lag=0.8)
    TinesHook().update_action(
        90005, disabled=False, options={"recipients": ["a@example.com"], "subject": "s"}
    )
    sensor = TinesActionSensor(
        task_id="s",
        action_id=90005,
        expected={"disabled": False, "options": {"subject": "s"}},
        poke_interval=0.2,
        timeout=10,
    )
    result = sensor.execute({})
    assert result["id"] == 90005 and result["disabled"] is False
    assert len(gets(fluents_tines_sandbox)) >= 2
    assert "still differs: disabled: true -> false" in capsys.readouterr().out


def test_timeout_and_soft_fail(fluents_tines_sandbox):
    never = {"name": "never this"}
    with pytest.raises(AirflowSensorTimeout):
        TinesActionSensor(
            task_id="s", action_id=90005, expected=never, poke_interval=0.2, timeout=0.5
        ).execute({})
    with pytest.raises(AirflowSkipException):
        TinesActionSensor(
            task_id="s", action_id=90005, expected=never, poke_interval=0.2, timeout=0.5, soft_fail=True
        ).execute({})


def test_missing_object_is_waited_for_until_it_appears(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    seed = default_seed()
    state.reset({**seed, "tines": {"actions": [a for a in seed["tines"]["actions"] if a["id"] != 90006]}})
    missing_polls = reappear_later(state, 0.5)
    result = TinesActionSensor(
        task_id="s",
        action_id=90006,
        expected={"name": "Open case in ticketing"},
        poke_interval=0.2,
        timeout=10,
    ).execute({})
    assert result["id"] == 90006
    assert missing_polls[0] >= 2


def test_missing_object_fails_at_once_when_asked(fluents_tines_sandbox):
    sensor = TinesActionSensor(
        task_id="s", action_id=4, expected={"disabled": False}, fail_on_missing=True, timeout=30
    )
    with pytest.raises(ApiClientError) as err:
        sensor.execute({})
    assert err.value.http_status == 404 and isinstance(err.value, AirflowFailException)
    assert len(gets(fluents_tines_sandbox)) == 1


def test_inbound_agent_matches_by_id_whether_embedded_or_not(fluents_tines_sandbox):
    hook = FluentsHook()
    embedded = hook.get_number(NUMBER)
    assert isinstance(embedded["inbound_agent"], dict)
    normalized = {**embedded, "inbound_agent": "agt_front_desk_v1"}
    for shape in (embedded, normalized):
        assert FLUENTS_NUMBER.state_differences(shape, {"inbound_agent": "agt_front_desk_v1"}) == []
        assert FLUENTS_NUMBER.state_differences(shape, {"inbound_agent": "agt_front_desk_v2"}) != []
    sensor = FluentsNumberSensor(
        task_id="s", phone_number=NUMBER, expected={"inbound_agent": "agt_front_desk_v1"}
    )
    assert sensor.execute({})["number"] == NUMBER
    event = first_event(
        ObjectStateTrigger(
            conn_id="fluents_default",
            object_kind="fluents.number",
            object_id=NUMBER,
            expected={"inbound_agent": "agt_front_desk_v1", "example_context": {"queue": "support"}},
            end_time=time.time() + 5,
        )
    )
    assert event["status"] == "success" and event["object"]["inbound_agent"]["id"] == "agt_front_desk_v1"


def test_check_callable_and_action_sensor(fluents_tines_sandbox):
    sensor = FluentsActionSensor(
        task_id="s",
        action_id="3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11",
        expected={"config": {"phone_number": "+14155550190"}},
        check=lambda action: action["label"].startswith("Transfer"),
        deferrable=True,  # a callable cannot be deferred: poke mode instead, no TaskDeferred
        timeout=5,
    )
    assert sensor.execute({})["type"] == "action_transfer_call"


def test_default_poke_intervals_respect_the_tines_rate_limit():
    sensor = TinesActionSensor(task_id="s", action_id=1, expected={"disabled": False})
    assert sensor.poke_interval >= 60  # ten waiting sensors stay at 10 of the 100 requests a minute
    assert FluentsNumberSensor(task_id="n", phone_number=NUMBER, expected={"label": "x"}).poke_interval == 30


# ---- deferrable mode and the trigger -----------------------------------------------------------------


def test_deferrable_sensor_checks_once_then_defers_without_the_key(fluents_tines_sandbox):
    sensor = TinesActionSensor(
        task_id="s",
        action_id=90005,
        expected={"disabled": False},
        deferrable=True,
        poke_interval=5,
        timeout=120,
        hook_params={"timeout": 7, "retry_policy": RetryPolicy(max_attempts=2)},
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ObjectStateTrigger) and deferred.value.method_name == "execute_complete"
    # Airflow's deferral timeout is a backstop a minute after the trigger's own deadline.
    assert 119 < deferred.value.timeout.total_seconds() - 60 <= 120
    assert len(gets(fluents_tines_sandbox)) == 1
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_fluents_tines.triggers.state.ObjectStateTrigger"
    assert DEFAULT_TINES_TOKEN not in json.dumps(kwargs) and "password" not in json.dumps(kwargs)
    assert 115 < kwargs["end_time"] - time.time() <= 120
    rebuilt = ObjectStateTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    # The task's hook settings travel as JSON, and the trigger's hook uses them.
    assert kwargs["hook_params"] == {
        "timeout": 7,
        "retry_policy": {**asdict(RetryPolicy()), "max_attempts": 2},
    }
    assert rebuilt._prepare_hook().settings.timeout == 7


def test_trigger_waits_through_the_lag(fluents_tines_sandbox):
    fluents_tines_sandbox.state.configure(visibility_lag=0.6)
    TinesHook().update_action(90005, disabled=False)
    fluents_tines_sandbox.state.clear_journal()
    event = first_event(tines_trigger(poke_interval=0.2))
    assert event["status"] == "success" and event["object"]["disabled"] is False
    assert 2 <= len(gets(fluents_tines_sandbox)) <= 6


def test_trigger_times_out_by_itself_with_the_remaining_diff(fluents_tines_sandbox):
    event = first_event(
        tines_trigger(expected={"name": "never"}, poke_interval=0.2, end_time=time.time() + 0.7)
    )
    assert event["status"] == "timeout"
    assert event["diff"] == [{"field": "name", "current": "Escalate to on-call", "requested": "never"}]
    assert event["wait_log"]["differences"] == event["diff"] and event["wait_log"]["failure"] is None
    sensor = TinesActionSensor(task_id="s", action_id=90005, expected={"name": "never"}, soft_fail=True)
    with pytest.raises(
        AirflowSkipException,
        match=r"last read at \d\d:\d\d:\d\d UTC: still differing: name: \"Escalate to on-call\" -> \"never\"",
    ):
        sensor.execute_complete({}, event)
    with pytest.raises(AirflowSensorTimeout):
        TinesActionSensor(task_id="s", action_id=90005, expected={"name": "never"}).execute_complete(
            {}, event
        )


def test_trigger_404_waits_or_fails(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    seed = default_seed()
    state.reset({**seed, "tines": {"actions": [a for a in seed["tines"]["actions"] if a["id"] != 90005]}})
    missing_polls = reappear_later(state, 0.5)
    assert first_event(tines_trigger(expected={"disabled": True}, poke_interval=0.2))["status"] == "success"
    assert missing_polls[0] >= 2
    failed = first_event(tines_trigger(action_id=4, fail_on_missing=True))
    assert failed["status"] == "failed" and failed["http_status"] == 404 and failed["retryable"] is False
    with pytest.raises(AirflowFailException, match="Action 4 not found"):
        TinesActionSensor(task_id="s", action_id=4, expected={"x": 1}).execute_complete({}, failed)


def test_persistent_403_fails_once_without_a_loop(fluents_tines_sandbox):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/*", status=403, count=1000)
    event = first_event(tines_trigger(poke_interval=0.5, end_time=time.time() + 3))
    assert event["status"] == "failed" and event["http_status"] == 403
    assert len(gets(fluents_tines_sandbox)) == 1


def test_persistent_500_polls_at_most_once_per_interval(fluents_tines_sandbox):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/*", status=500, count=1000)
    started = time.time()
    event = first_event(tines_trigger(poke_interval=0.5, end_time=started + 2.2))
    polls = gets(fluents_tines_sandbox)
    assert event["status"] == "timeout"
    assert len(polls) <= 2.2 / 0.5 + 1
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(polls)]
    assert min(gaps) >= 0.45


def test_trigger_honours_retry_after(fluents_tines_sandbox):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/*", status=429, retry_after="1")
    event = first_event(tines_trigger(expected={"disabled": True}, poke_interval=0.05))
    first, second = gets(fluents_tines_sandbox)[:2]
    assert event["status"] == "success"
    assert second["time"] - first["time"] >= 1.0


def test_trigger_exponential_backoff_spaces_polls(fluents_tines_sandbox):
    trigger = tines_trigger(
        expected={"name": "never"},
        poke_interval=0.1,
        exponential_backoff=True,
        max_interval=0.4,
        end_time=time.time() + 1.3,
    )
    assert [trigger._interval(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert first_event(trigger)["status"] == "timeout"
    assert len(gets(fluents_tines_sandbox)) <= 6


def test_trigger_wrong_key_fails_with_the_api_message(fluents_tines_sandbox, monkeypatch):
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_TINES_BAD", json.dumps({**env, "password": "not-the-key-000"}))
    trigger = tines_trigger()
    trigger.conn_id = "tines_bad"
    event = first_event(trigger)
    assert event["status"] == "failed" and "Authentication failed" in event["message"]
    assert "not-the-key-000" not in event["message"] and DEFAULT_FLUENTS_TOKEN not in event["message"]


def test_deferrable_sensor_end_to_end_in_a_real_dag(fluents_tines_sandbox, airflow_db):
    from airflow.sdk import DAG

    # The change is made only once the sensor's first poke has read the action, however long the task
    # takes to start on a busy machine: that poke sees the old state, so the sensor must defer, and the
    # trigger must poll until the change shows (a short visibility lag covers the poke's own request).
    fluents_tines_sandbox.state.configure(visibility_lag=1.0)
    assert TinesHook().get_action(90005)["disabled"] is True
    fluents_tines_sandbox.state.clear_journal()

    def enable_after_the_first_poke() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not gets(fluents_tines_sandbox):
            time.sleep(0.05)
        TinesHook().update_action(90005, disabled=False)

    changer = threading.Thread(target=enable_after_the_first_poke, daemon=True)
    with DAG("sensor_e2e", schedule=None) as dag:
        TinesActionSensor(
            task_id="wait",
            action_id=90005,
            expected={"disabled": False},
            deferrable=True,
            poke_interval=0.3,
            timeout=60,
        )
    changer.start()
    dag_run = run_dag(dag)
    changer.join(timeout=5)
    assert task_states(dag_run) == {"wait": "success"}
    assert xcom(dag_run, "wait")["disabled"] is False
    # the worker's first poke saw the old state, then the trigger polled until the write showed
    methods = [e["method"] for e in fluents_tines_sandbox.state.journal()]
    assert methods[0] == "GET" and "GET" in methods[methods.index("PUT") + 1 :], methods


class RescheduleTI:
    """What reschedule mode asks of a task instance: when the first try started (None: now)."""

    def get_first_reschedule_date(self, context):
        return None


def test_reschedule_mode_frees_the_slot_between_pokes(fluents_tines_sandbox):
    from airflow_provider_fluents_tines.version_compat import AirflowRescheduleException

    waiting = TinesActionSensor(
        task_id="s", action_id=90005, expected={"disabled": False}, mode="reschedule", poke_interval=60
    )
    with pytest.raises(AirflowRescheduleException) as rescheduled:
        waiting.execute({"ti": RescheduleTI()})
    seconds_away = (rescheduled.value.reschedule_date - datetime.now(timezone.utc)).total_seconds()
    assert 55 <= seconds_away <= 61
    done = TinesActionSensor(task_id="s", action_id=90005, expected={"disabled": True}, mode="reschedule")
    assert done.execute({"ti": RescheduleTI()})["id"] == 90005
    assert len(gets(fluents_tines_sandbox)) == 2


# ---- deadlines and what a timeout says (issue #11, defects 9 and 10) -------------------------------------


def _timed_out_message(sensor, context=None) -> str:
    with pytest.raises((AirflowSensorTimeout, AirflowSkipException)) as err:
        sensor.execute(context or {})
    return str(err.value)


def test_poke_mode_with_failing_reads_ends_near_its_timeout(fluents_tines_sandbox):
    # Four 503s on the first read used to keep the first poke in hook retries for 12-17 s.
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/*", status=503, count=4)
    sensor = TinesActionSensor(
        task_id="s", action_id=90005, expected={"name": "never"}, timeout=3, poke_interval=1, mode="poke"
    )
    started, started_at = time.monotonic(), time.time()
    message = _timed_out_message(sensor)
    elapsed = time.monotonic() - started
    # The bound: the timeout, one poke interval and one request deadline (the 30 s default timeout
    # would never be reached here: every attempt is cut to the sensor's deadline).
    assert elapsed < 3 + 1 + 1.5, f"the sensor ended {elapsed:.1f} s after it started"
    assert "Sensor has timed out" in message
    assert "No read succeeded; the last one failed at" in message and "HTTP 503" in message
    # No request after the deadline (how many fit before it depends on the backoff's jitter).
    reads = gets(fluents_tines_sandbox)
    assert len(reads) >= 2 and all(read["time"] < started_at + 3 for read in reads), reads


def test_deferrable_first_poke_counts_toward_the_timeout(fluents_tines_sandbox):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/*", status=503, count=3)
    sensor = TinesActionSensor(
        task_id="s",
        action_id=90005,
        expected={"name": "never"},
        timeout=4,
        deferrable=True,
        poke_interval=0.5,
    )
    started = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    # The trigger's deadline is the sensor's, fixed before the worker's first poke and its retries.
    assert deferred.value.trigger.end_time <= started + 4 + 0.01
    event = first_event(deferred.value.trigger)
    assert event["status"] == "timeout" and time.time() - started < 4 + 0.5 + 1.5


def test_a_wait_that_never_read_the_object_says_so(fluents_tines_sandbox):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/*", status=500, count=100)
    event = first_event(tines_trigger(poke_interval=0.2, end_time=time.time() + 0.8))
    sensor = TinesActionSensor(task_id="s", action_id=90005, expected={"disabled": False}, timeout=1)
    with pytest.raises(AirflowSensorTimeout) as err:
        sensor.execute_complete({}, event)
    message = str(err.value)
    assert "no read succeeded; the last one failed at" in message and "HTTP 500" in message
    assert "not found" not in message


def test_an_object_deleted_mid_wait_is_reported_missing_not_with_old_values(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    threading.Timer(0.3, lambda: state.reset({"tines": {"actions": []}})).start()
    event = first_event(
        tines_trigger(expected={"name": "never"}, poke_interval=0.2, end_time=time.time() + 1.2)
    )
    sensor = TinesActionSensor(task_id="s", action_id=90005, expected={"name": "never"}, timeout=1)
    with pytest.raises(AirflowSensorTimeout) as err:
        sensor.execute_complete({}, event)
    message = str(err.value)
    assert "the object does not exist (404)" in message and "Escalate to on-call" not in message


def test_ids_with_control_or_bidi_characters_are_escaped_in_logs(fluents_tines_sandbox, caplog, capsys):
    forged = "act\u202eevil\x1b[2J"  # passes the id rule (no whitespace), yet must not reach a log raw
    sensor = FluentsActionSensor(task_id="s", action_id=forged, expected={"label": "x"})
    assert sensor.poke({}) is False  # no such action: waited for
    logged = caplog.text + "".join(capsys.readouterr())
    # Airflow 3.1 colours its console lines (SGR sequences ending in "m"); the forged "\x1b[2J" is not one.
    logged = re.sub(r"\x1b\[[0-9;]*m", "", logged)
    assert "act\\u202eevil\\x1b[2J" in logged
    assert "\u202e" not in logged and "\x1b" not in logged


class LateRescheduleTI(RescheduleTI):
    """A reschedule-mode poke whose first poke was long ago: its deadline has passed."""

    def get_first_reschedule_date(self, context):
        return datetime.now(timezone.utc) - timedelta(seconds=60)


def test_a_reschedule_poke_past_the_deadline_reads_once_and_says_what_it_saw(fluents_tines_sandbox):
    sensor = TinesActionSensor(
        task_id="s", action_id=90005, expected={"name": "never"}, mode="reschedule", timeout=10
    )
    message = _timed_out_message(sensor, {"ti": LateRescheduleTI(), "task_reschedule_count": 3})
    assert "Sensor has timed out" in message
    assert "Last read at" in message and 'name: "Escalate to on-call" -> "never"' in message
    assert len(gets(fluents_tines_sandbox)) == 1


def test_soft_fail_applies_to_the_deferrable_sensors_first_poke(fluents_tines_sandbox):
    sensor = TinesActionSensor(
        task_id="s",
        action_id=4,
        expected={"disabled": False},
        deferrable=True,
        fail_on_missing=True,
        soft_fail=True,
    )
    with pytest.raises(AirflowSkipException, match="HTTP 404"):
        sensor.execute({})


def test_bad_hook_params_fail_before_any_request_even_past_the_deadline(fluents_tines_sandbox):
    sensor = TinesActionSensor(
        task_id="s",
        action_id=90005,
        expected={"disabled": True},
        deferrable=True,
        timeout=0,
        hook_params={"api_key": "sk-live-abcdef123456"},
    )
    with pytest.raises(InvalidFieldError, match=r"^hook_params\.api_key: is not a hook setting"):
        sensor.execute({})
    assert fluents_tines_sandbox.state.journal() == []
    with pytest.raises(InvalidFieldError, match=r"^hook_params\.timeout"):
        tines_trigger(hook_params={"timeout": "sk-live-abcdef123456"})


def test_a_bad_connection_setting_in_the_trigger_fails_without_retries(fluents_tines_sandbox, monkeypatch):
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_TINES_DEFAULT", json.dumps({**env, "extra": {"timeout": "soon"}}))
    event = first_event(tines_trigger())
    assert event["status"] == "failed" and event["retryable"] is False
    assert event["message"].startswith("extra.timeout: must be a number")


def test_triggers_on_one_key_share_its_budget_and_draw_no_429(fluents_tines_sandbox, monkeypatch):
    # Three triggers polling every 50 ms for 2.5 s against a server allowing 2 reads per 1 s window:
    # unpaced they would send ~150 reads and be refused; the shared budget keeps them inside the limit.
    fluents_tines_sandbox.state.configure(rate_limit={"enabled": True, "limit": 2, "window": 1})
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    extra = {"requests_per_minute": 2, "rate_limit_window": 1}
    monkeypatch.setenv("AIRFLOW_CONN_TINES_DEFAULT", json.dumps({**env, "extra": extra}))

    async def wait_all():
        triggers = [
            tines_trigger(expected={"name": "never"}, poke_interval=0.05, end_time=time.time() + 2.5)
            for _ in range(3)
        ]

        async def first(trigger):
            return (await trigger.run().__anext__()).payload

        return await asyncio.gather(*(first(t) for t in triggers))

    events = asyncio.run(wait_all())
    assert [e["status"] for e in events] == ["timeout"] * 3
    # Near the deadline a poll may find no slot in time and say so; none is refused by the server.
    failures = [e["wait_log"]["failure"] or "" for e in events]
    assert not any("429" in f for f in failures), failures
    assert all(e["wait_log"]["seen_at"] is not None for e in events)
    assert 2 <= len(gets(fluents_tines_sandbox)) <= 6  # windows starting at 0, ~1.02 and ~2.04 s
