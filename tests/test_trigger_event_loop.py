"""
The trigger never blocks the triggerer's event loop: no import, connection lookup or other synchronous
set-up runs on the loop's thread once ``run()`` has started.

Shown structurally in a fresh interpreter (where nothing of the HTTP stack is imported yet, as in a
triggerer's first trigger): an audit hook records every module imported on the loop's thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

_PROBE = textwrap.dedent(
    """
    import asyncio, json, sys, threading, time

    # Airflow's own trigger base first: on some versions (3.1.0) it imports requests itself.
    import airflow.triggers.base

    heavy = ("requests", "aiohttp", "airflow.providers.http.hooks.http")
    heavy_from_airflow = {m for m in heavy if m in sys.modules}
    # Loading the trigger class, as the triggerer does before it runs the trigger.
    from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger

    heavy_before = sorted(m for m in heavy if m in sys.modules and m not in heavy_from_airflow)
    loop_thread = None
    imported_on_loop = []

    def audit(event, args):
        if event == "import" and threading.get_ident() == loop_thread:
            imported_on_loop.append(args[0])

    async def main():
        global loop_thread
        loop_thread = threading.get_ident()
        sys.addaudithook(audit)
        trigger = ObjectStateTrigger(
            conn_id=sys.argv[2], object_kind=sys.argv[1] + "." + sys.argv[3],
            object_id=json.loads(sys.argv[4]), expected=json.loads(sys.argv[5]),
            end_time=time.time() + 20, poke_interval=0.1,
        )
        return (await trigger.run().__anext__()).payload

    event = asyncio.run(main())
    print(json.dumps({"event": event, "imported_on_loop": imported_on_loop, "heavy_before": heavy_before}))
    """
)


@pytest.mark.parametrize(
    ("service", "conn_id", "kind", "object_id", "expected"),
    [
        ("tines", "tines_default", "action", 90005, {}),
        (
            "fluents",
            "fluents_default",
            "number",
            "+14155550101",
            {"inbound_agent": "agt_front_desk_v1"},
        ),
    ],
)
def test_nothing_is_imported_on_the_event_loop_after_run_starts(
    fluents_tines_sandbox, monkeypatch, service, conn_id, kind, object_id, expected
):
    # A UI-made connection: every declared extra saved as null.
    env = json.loads(fluents_tines_sandbox.connection_env()[f"AIRFLOW_CONN_{conn_id.upper()}"])
    env["extra"] = {
        "timeout": None,
        "max_attempts": None,
        "max_retry_wait": None,
        "requests_per_minute": None,
        "allow_insecure_http": None,
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(env))
    expected = expected or {"disabled": True}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            service,
            conn_id,
            kind,
            json.dumps(object_id),
            json.dumps(expected),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["event"]["status"] == "success", report["event"]
    # Loading our class adds none of the HTTP stack: it is imported when run() prepares the hook, off the loop.
    assert report["heavy_before"] == []
    assert report["imported_on_loop"] == []
    assert fluents_tines_sandbox.state.journal(method="GET")
