"""
The fault matrix: every kind of bad answer, on a read and on a write, through the hook, an update
operator, a sensor's poke and the deferrable trigger; the expected outcome of each cell is the table
below. One fault hits the first matching request; the answers after it are normal. The sandbox's
journal and state are the witnesses.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time

import pytest

from airflow_provider_fluents_tines.exceptions import ApiClientError, ApiRequestError
from airflow_provider_fluents_tines.hooks.tines import TinesHook
from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator
from airflow_provider_fluents_tines.sensors.tines import TinesActionSensor
from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger

from .test_operators import run

ACTION = 90005
# The connection's per-attempt deadline: the slow faults overrun it, while a normal answer on a
# loaded CI machine stays well inside it (0.5 s was not: a retry's normal answer timed out once).
TIMEOUT = 2.0


def _http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


# name -> the sandbox fault (method and path are set per cell)
FAULTS = {
    "429 Retry-After seconds": {"status": 429, "retry_after": "1"},
    "429 Retry-After date": {"status": 429, "retry_after": None},  # an HTTP date, set when the cell runs
    "500": {"status": 500},
    "502 HTML page": {
        "status": 502,
        "body": "<html><h1>502 Bad Gateway</h1></html>",
        "content_type": "text/html",
    },
    "503": {"status": 503},
    "connection reset": {"reset": True},
    "dropped mid-answer": {"drop": True},
    "trickling body": {"trickle": 0.5},
    "delay beyond the timeout": {"delay": TIMEOUT + 2.0},
    "malformed JSON": {"malformed": True},
    "JSON that is not an object": {"status": 200, "body": "[]"},
    "401": {"status": 401},
    "403": {"status": 403},
    "404": {"status": 404},
}
TRANSIENT = [name for name in FAULTS if name not in ("JSON that is not an object", "401", "403", "404")]
MODES = ("hook read", "hook write", "operator read", "operator write", "poke", "deferrable")

# The table: fault -> mode -> outcome.
#   ok            the call, task or wait completes (transient faults are retried)
#   client error  ApiClientError: fails without task retries, and nothing is written
#   api error     ApiRequestError that is not retried: the answer is not what the endpoint gives
#   waits         the poke reports "not yet" (a missing object is waited for)
#   failed        the trigger ends with a failed event, not retryable
EXPECTED: dict[str, dict[str, str]] = {
    **{name: dict.fromkeys(MODES, "ok") for name in TRANSIENT},
    "JSON that is not an object": {**dict.fromkeys(MODES[:5], "api error"), "deferrable": "failed"},
    "401": {**dict.fromkeys(MODES[:5], "client error"), "deferrable": "failed"},
    "403": {**dict.fromkeys(MODES[:5], "client error"), "deferrable": "failed"},
    "404": {**dict.fromkeys(MODES[:4], "client error"), "poke": "waits", "deferrable": "ok"},
}


@pytest.fixture
def sandbox(fluents_tines_sandbox, monkeypatch):
    """tines_default with a short per-attempt timeout, so that slow faults cost two seconds."""
    fields = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    fields["extra"] = {"timeout": TIMEOUT, "max_retry_wait": 20}
    monkeypatch.setenv("AIRFLOW_CONN_TINES_DEFAULT", json.dumps(fields))
    return fluents_tines_sandbox


def _outcome(call) -> str:
    try:
        result = call()
    except ApiClientError:
        return "client error"
    except ApiRequestError as err:
        return "api error" if not err.retryable else f"retryable error: {err}"
    if result is False:
        return "waits"
    return "ok"


def _run_cell(mode: str) -> str:
    if mode == "hook read":
        return _outcome(lambda: TinesHook().get_action(ACTION))
    if mode == "hook write":
        return _outcome(lambda: TinesHook().update_action(ACTION, name="Escalate (matrix)"))
    if mode in ("operator read", "operator write"):
        operator = TinesUpdateActionOperator(task_id="t", action_id=ACTION, name="Escalate (matrix)")
        return _outcome(lambda: run(operator))
    if mode == "poke":
        sensor = TinesActionSensor(task_id="s", action_id=ACTION, expected={"disabled": True})
        return _outcome(lambda: sensor.poke({}))
    trigger = ObjectStateTrigger(
        conn_id="tines_default",
        object_kind="tines.action",
        object_id=ACTION,
        expected={"disabled": True},
        end_time=time.time() + 20,
        poke_interval=0.1,
    )
    event = asyncio.run(asyncio.wait_for(trigger.run().__anext__(), timeout=30)).payload
    if event["status"] == "success":
        return "ok"
    return "failed" if event["status"] == "failed" and not event["retryable"] else f"event {event}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_matrix(sandbox, fault, mode):
    spec = dict(FAULTS[fault])
    if fault == "429 Retry-After date":
        spec["retry_after"] = _http_date(1.5)
    on_write = mode.endswith("write")
    sandbox.state.add_fault(method="PUT" if on_write else "GET", path=f"/api/v1/actions/{ACTION}", **spec)

    started = time.monotonic()
    outcome = _run_cell(mode)
    if "delay" in spec:
        # The delayed request is still held by the sandbox and will land late: let it land now,
        # not on the next cell's freshly reset state.
        time.sleep(max(0.0, spec["delay"] - (time.monotonic() - started)) + 0.2)
    assert outcome == EXPECTED[fault][mode]

    # The witnesses: a transient fault was answered by exactly one more request of the same kind,
    # a write happened only when the cell succeeded, and nothing is left of the fault.
    puts = sandbox.state.journal(method="PUT")
    name_now = sandbox.state.snapshot()["tines"]["actions"][ACTION]["name"]
    if mode in ("hook write", "operator read", "operator write"):
        written = EXPECTED[fault][mode] == "ok"
        assert (name_now == "Escalate (matrix)") is written
        assert bool(puts) is written or (on_write and not written and len(puts) == 1)
    else:
        assert puts == []
    if fault in TRANSIENT and mode != "deferrable":
        faulted = sandbox.state.journal(method="PUT" if on_write else "GET")
        assert len(faulted) == 2, [e["path"] for e in faulted]
    assert all(f.count == 0 for f in sandbox.state.faults)
