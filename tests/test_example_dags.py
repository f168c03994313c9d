"""The example DAGs: they import cleanly and run to success through dag.test() against the sandbox."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .dag_runner import dagbag_class, run_dag, task_states

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"
NUMBERS = ("+14155550101", "+14155550102", "+14155550103")


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def restorable_state(snapshot: dict) -> dict:
    """The fields the rollout writes, per object."""
    numbers = snapshot["fluents"]["numbers"]
    actions = snapshot["tines"]["actions"]
    return {
        "numbers": {
            n: {k: numbers[n][k] for k in ("inbound_agent", "label", "example_context")} for n in NUMBERS
        },
        "escalation": {k: actions[90005][k] for k in ("disabled", "options", "name")},
    }


def test_every_example_dag_imports_without_errors():
    bag = dagbag_class()(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "fluents_tines_rollout",
        "tines_maintenance_window",
        "fluents_action_update",
        "tines_escalation_watch",
    }
    for dag in bag.dags.values():
        assert dag.doc_md and "example" in dag.tags


def test_rollout_succeeds_end_to_end(fluents_tines_sandbox, airflow_db):
    fluents_tines_sandbox.state.configure(visibility_lag=0.5)
    dag_run = run_dag(load("fluents_tines_rollout"))
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["rollout.verify_wave_3"] == "success" and states["rollout.rollback"] == "skipped"
    assert states["rollout.result"] == "success"
    after = restorable_state(fluents_tines_sandbox.state.snapshot())
    assert {n["inbound_agent"] for n in after["numbers"].values()} == {"agt_front_desk_v2"}
    assert after["escalation"]["disabled"] is False
    assert after["escalation"]["options"]["subject"] == "Front Desk v2: high severity phishing report"
    assert after["escalation"]["options"]["body"] == "{{.enrich_sender_reputation.body}}"


def test_rollout_failure_mid_way_restores_every_object(fluents_tines_sandbox, airflow_db):
    state = fluents_tines_sandbox.state
    before = restorable_state(state.snapshot())
    # The numbers are routed, then the Tines write is refused: the run must put the numbers back.
    state.add_fault(method="PUT", path="/api/v1/actions/90005", status=422, count=100)
    dag_run = run_dag(load("fluents_tines_rollout"))
    states = task_states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["rollout.apply_wave_1"] == states["rollout.apply_wave_2"] == "success"
    assert states["rollout.apply_wave_3"] == "failed" and states["rollout.verify_wave_3"] == "upstream_failed"
    assert states["rollout.rollback"] == "success" and states["rollout.result"] == "failed"
    assert restorable_state(state.snapshot()) == before
    number_writes = [
        e["body"]["inbound_agent"] for e in state.journal(method="POST", path="/v1/numbers/update")
    ]
    assert number_writes.count("agt_front_desk_v2") == 3 and number_writes.count("agt_front_desk_v1") == 3


MAINTENANCE_IDS = {"action_ids": [90003, 90006]}


def test_maintenance_window_disables_then_reenables(fluents_tines_sandbox, airflow_db):
    dag_run = run_dag(load("tines_maintenance_window"), run_conf=MAINTENANCE_IDS)
    assert str(dag_run.state) == "success", task_states(dag_run)
    puts = [(e["path"], e["body"]["disabled"]) for e in fluents_tines_sandbox.state.journal(method="PUT")]
    assert sorted(puts) == [(f"/api/v1/actions/{i}", d) for i in (90003, 90006) for d in (False, True)]
    actions = fluents_tines_sandbox.state.snapshot()["tines"]["actions"]
    assert actions[90003]["disabled"] is False and actions[90006]["disabled"] is False


def test_maintenance_failure_still_reenables_and_fails_the_run(fluents_tines_sandbox, airflow_db):
    dag_run = run_dag(
        load("tines_maintenance_window"), run_conf={**MAINTENANCE_IDS, "simulate_failure": True}
    )
    states = task_states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["maintenance"] == "failed" and states["maintenance_failed"] == "failed"
    assert states["reenable[0]"] == states["reenable[1]"] == "success"
    actions = fluents_tines_sandbox.state.snapshot()["tines"]["actions"]
    assert actions[90003]["disabled"] is False and actions[90006]["disabled"] is False


def test_unconfigured_maintenance_run_changes_nothing(fluents_tines_sandbox, airflow_db):
    """What unpausing the DAG does at once (the latest interval runs even with catchup=False)."""
    dag_run = run_dag(load("tines_maintenance_window"))
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["actions_to_pause"] == "success" and states["maintenance"] == "skipped"
    assert fluents_tines_sandbox.state.journal() == []


def test_examples_honour_default_deferrable():
    """No example hard-codes deferrable: a deployment without a triggerer waits in poke mode."""
    probe = (
        "import importlib.util, inspect, sys; from pathlib import Path\n"
        "from airflow.sdk import BaseSensorOperator\n"
        "from airflow_provider_fluents_tines.sensors.base import BaseObjectStateSensor\n"
        "default = inspect.signature(BaseObjectStateSensor.__init__).parameters['deferrable'].default\n"
        "for path in sorted(Path(sys.argv[1]).glob('*.py')):\n"
        "    spec = importlib.util.spec_from_file_location(path.stem, path)\n"
        "    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "    for task in module.dag.tasks:\n"
        "        if issubclass(getattr(task, 'operator_class', type(task)), BaseSensorOperator):\n"
        "            kwargs = getattr(task, 'partial_kwargs', None)  # a mapped sensor gets the class default\n"
        "            print('SENSOR', task.task_id, task.deferrable if kwargs is None else kwargs.get('deferrable', default))\n"
    )
    seen = {}
    for setting in ("True", "False"):
        env = {**os.environ, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": setting}
        result = subprocess.run(
            [sys.executable, "-c", probe, str(EXAMPLES)], capture_output=True, text=True, env=env, timeout=120
        )
        assert result.returncode == 0, result.stderr[-2000:]
        # Airflow 3.0 logs to stdout while importing hooks: read only the probe's own lines
        lines = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("SENSOR ")]
        seen[setting] = dict(lines)
    assert set(seen["True"]) == {
        "rollout.verify_wave_1",
        "rollout.verify_wave_2",
        "rollout.verify_wave_3",
        "wait_disabled",
        "verify_enabled",
        "wait_transfer",
    }
    assert set(seen["True"].values()) == {"True"} and set(seen["False"].values()) == {"False"}


@pytest.mark.parametrize("transfer_number", ["+14155550177"])
def test_fluents_action_update(fluents_tines_sandbox, airflow_db, transfer_number):
    fluents_tines_sandbox.state.configure(visibility_lag=0.5)
    dag_run = run_dag(load("fluents_action_update"))
    assert str(dag_run.state) == "success", task_states(dag_run)
    action = fluents_tines_sandbox.state.snapshot()["fluents"]["actions"][
        "3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11"
    ]
    assert action["config"] == {"phone_number": transfer_number}


def test_the_escalation_watch_is_scheduled_on_an_asset_its_watcher_polls():
    from datetime import time

    spec = importlib.util.spec_from_file_location("example_watch", EXAMPLES / "tines_escalation_watch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    [watcher] = module.escalation_action.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "airflow_provider_fluents_tines.triggers.watch.ObjectChangeTrigger"
    assert kwargs["object_id"] == 90005 and kwargs["fields"] == ["disabled"]
    assert [
        module.in_window(window, time.fromisoformat(now))
        for window, now in [
            ("02:00-04:00", "03:00"),
            ("02:00-04:00", "04:00"),
            ("22:00-02:00", "23:30"),
            ("22:00-02:00", "01:59"),
            ("22:00-02:00", "12:00"),
            ("", "03:00"),
        ]
    ] == [True, False, True, True, False, False]
