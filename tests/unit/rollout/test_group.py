"""How a Rollout wires its tasks: nothing here runs a task."""

from __future__ import annotations

import pytest

from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.rollout import Change, Rollout

CHANGES = [Change("fluents.number", f"+1415555010{n}", {"inbound_agent": "agt_2"}) for n in (1, 2, 3)]


def build(**options):
    from airflow.sdk import DAG, task

    with DAG("rollout_wiring", schedule=None) as dag:
        rollout = Rollout(changes=CHANGES, waves=[1, 1.0], **options)

        @task
        def smoke_test():
            return None

        guarded = smoke_test()
        rollout.guard(guarded)
    return dag, rollout, guarded


def test_the_rollback_and_the_result_wait_for_every_task_that_may_write_or_fail():
    """
    Both are teardowns of the plan, downstream of every apply, verify and guarded task: neither
    starts while a wave (or its retries) may still be writing, as a one_failed rollback would.
    """
    _, rollout, guarded = build()
    forward = {
        *(t.task_id for t in rollout.applies),
        *(t.task_id for t in rollout.verifies),
        guarded.operator.task_id,
    }
    for final in (rollout.rollback, rollout.result):
        assert final.is_teardown
        assert forward <= final.upstream_task_ids, forward - final.upstream_task_ids
        assert rollout.plan.task_id in final.upstream_task_ids  # its setup
    assert rollout.rollback.task_id in rollout.result.upstream_task_ids
    assert rollout.result.on_failure_fail_dagrun  # a teardown's failure fails the run only when told to
    # The waves run in order, each verified before the next one writes.
    assert rollout.verifies[0].task_id in rollout.applies[1].upstream_task_ids
    assert rollout.applies[0].task_id in rollout.verifies[0].upstream_task_ids


def test_asking_for_approval_before_airflow_3_1_is_an_error_when_the_dag_is_parsed(monkeypatch):
    from airflow_provider_fluents_tines.rollout import group

    monkeypatch.setattr(group, "AIRFLOW_V_3_1_PLUS", False)
    with pytest.raises(InvalidFieldError, match=r"approval.*Airflow 3\.1"):
        build(approval=True)
