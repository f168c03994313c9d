"""
The rollout's plan task against the sandbox, called directly: a plan that runs again in a run reuses
the run's first snapshot (from the task state store, or from the apply tasks' copies), never the values
the rollout may have written; fields whose old value is unknown are refused.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.rollout import Change
from airflow_provider_fluents_tines.rollout.tasks import (
    PLAN_STATE_KEY,
    SNAPSHOT_XCOM_KEY,
    RolloutPlanOperator,
)

NUMBER = "+14155550101"
CONN_IDS = {"fluents": "fluents_default", "tines": "tines_default"}
APPLY_IDS = ["rollout.apply_wave_1"]


class FakeTI:
    """XCom as one try of a task sees it: what it pushed, and other tasks' values by task id."""

    def __init__(self, others: dict[tuple[str, str], object] | None = None, try_number: int = 1):
        self.pushed: dict[str, object] = {}
        self.others = others or {}
        self.try_number = try_number

    def xcom_push(self, key, value):
        self.pushed[key] = value

    def xcom_pull(self, task_ids, key="return_value"):
        if isinstance(task_ids, str):
            return self.others.get((task_ids, key))
        return [self.others[(t, key)] for t in task_ids if (t, key) in self.others]


class FakeStore(dict):
    """The task state store's accessor: shared by every try of the task."""

    def set(self, key, value, **_):
        self[key] = json.loads(json.dumps(value))  # it stores JSON, as Airflow's does


def plan_task(changes, **kwargs) -> RolloutPlanOperator:
    return RolloutPlanOperator(
        task_id="plan",
        changes=[change.as_dict() for change in changes],
        conn_ids=CONN_IDS,
        plan_task_id="rollout.plan",
        waves=[1],
        apply_task_ids=APPLY_IDS,
        **kwargs,
    )


def run(task, ti=None, store=None):
    context = {"ti": ti or FakeTI()}
    if store is not None:
        context["task_state_store"] = store
    return task.execute(context)


CHANGES = [Change("fluents.number", NUMBER, {"inbound_agent": "agt_front_desk_v2"})]


def test_a_plan_run_again_reuses_the_first_snapshot_from_the_task_state_store(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    store = FakeStore()
    first = run(plan_task(CHANGES), store=store)
    assert first["entries"][0]["snapshot"] == {"inbound_agent": "agt_front_desk_v1"}
    assert store[PLAN_STATE_KEY]["entries"][0]["snapshot"] == {"inbound_agent": "agt_front_desk_v1"}
    # The rollout wrote, then the plan task was cleared: its XCom is gone, the store is not.
    state.update_fluents_number(NUMBER, {"inbound_agent": "agt_front_desk_v2"})
    again = run(plan_task(CHANGES), store=store)
    entry = again["entries"][0]
    assert entry["snapshot"] == {"inbound_agent": "agt_front_desk_v1"}, "re-snapshotted the written value"
    assert entry["status"] == "in_state"
    # Asked for, a new snapshot records what is there now.
    fresh = run(plan_task(CHANGES, new_snapshot=True), store=store)
    assert fresh["entries"][0]["snapshot"] == {}


def test_without_a_store_the_apply_tasks_copies_keep_the_first_snapshot(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    first = run(plan_task(CHANGES))
    state.update_fluents_number(NUMBER, {"inbound_agent": "agt_front_desk_v2"})
    copies = FakeTI(others={(APPLY_IDS[0], SNAPSHOT_XCOM_KEY): first["entries"]})
    again = run(plan_task(CHANGES), ti=copies)
    assert again["entries"][0]["snapshot"] == {"inbound_agent": "agt_front_desk_v1"}


def test_a_plan_run_again_with_other_changes_is_refused(fluents_tines_sandbox):
    store = FakeStore()
    run(plan_task(CHANGES), store=store)
    other = [Change("fluents.number", NUMBER, {"inbound_agent": "agt_after_hours"})]
    with pytest.raises(InvalidFieldError, match=r"changes\[0\].*new_snapshot=True"):
        run(plan_task(other), store=store)
    assert fluents_tines_sandbox.state.journal(method="POST") == []


def test_a_field_the_api_does_not_show_is_unrestorable(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    from airflow_provider_fluents_tines.hooks.fluents import FluentsHook
    from airflow_provider_fluents_tines.objects import FLUENTS_NUMBER

    shown = FluentsHook().get_object(FLUENTS_NUMBER, NUMBER)
    del shown["label"]
    state.add_fault(method="GET", path="/v1/numbers", status=200, body=json.dumps(shown), count=2)
    changes = [Change("fluents.number", NUMBER, {"label": "Canary"})]
    with pytest.raises(InvalidFieldError, match=r"label is not shown by the API.*allow_unrestorable=True"):
        run(plan_task(changes))
    plan = run(plan_task(changes, allow_unrestorable=True))
    assert "label" in plan["entries"][0]["unrestorable"] and plan["entries"][0]["snapshot"] == {}


def test_a_drift_check_writes_nothing_and_reports(fluents_tines_sandbox):
    from airflow_provider_fluents_tines.version_compat import AirflowFailException, AirflowSkipException

    with pytest.raises(AirflowFailException, match=r"1 object\(s\) differ.*fluents.number:\+14155550101"):
        run(plan_task(CHANGES, drift="fail"))
    with pytest.raises(AirflowSkipException):
        run(plan_task(CHANGES, drift="soft_fail"))
    assert run(plan_task(CHANGES, drift="report"))["entries"][0]["status"] == "change"
    in_state = [Change("fluents.number", NUMBER, {"inbound_agent": "agt_front_desk_v1"})]
    assert run(plan_task(in_state, drift="fail"))["entries"][0]["status"] == "in_state"
    assert fluents_tines_sandbox.state.journal(method="POST") == []
