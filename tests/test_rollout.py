"""
Rollouts end to end: real DAGs through dag.test() against the sandbox and its faults, every task
given retries as production DAGs have them. The sandbox's journal and its state are the witnesses:
after each case every object is at its snapshot value or reported as conflict, unrestorable or
unsettled, and never silently changed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest

from airflow_provider_fluents_tines.rollout import Change, Rollout
from airflow_provider_fluents_tines.rollout.tasks import REPORT_XCOM_KEY, RESULTS_XCOM_KEY, TABLE_XCOM_KEY
from airflow_provider_fluents_tines.sandbox import default_seed

from .dag_runner import run_cleared, run_dag, task_states, xcom

NUMBERS = ("+14155550101", "+14155550102", "+14155550103")
RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=0)}
FAST_HOOK = {"timeout": 1.0, "max_attempts": 2, "max_retry_wait": 1.0}


def numbers_to(agent: str, numbers: tuple[str, ...] = NUMBERS) -> list[Change]:
    return [Change("fluents.number", number, {"inbound_agent": agent}) for number in numbers]


def rollout_dag(dag_id: str, changes: Any, *, after=None, **options: Any):
    """A DAG holding one rollout (and, with ``after``, a guarded task made by that callable)."""
    from airflow.sdk import DAG

    options.setdefault("waves", [1, 1.0])
    options.setdefault("poke_interval", 0.2)
    options.setdefault("verify_timeout", 20)
    options.setdefault("settle_seconds", 1.0)
    options.setdefault("visibility_lag", 0.3)  # the sandbox shows writes at once unless a test says otherwise
    options.setdefault("hook_params", FAST_HOOK)
    options.setdefault("deferrable", False)
    with DAG(dag_id, schedule=None, default_args=RETRIES) as dag:
        rollout = Rollout(changes=changes, **options)
        if after is not None:
            rollout.guard(after())
    return dag


def agents(state) -> dict[str, Any]:
    numbers = state.snapshot()["fluents"]["numbers"]
    return {number: numbers[number]["inbound_agent"] for number in NUMBERS}


def report_of(dag_run) -> dict[str, str]:
    return {row["key"]: row["status"] for row in xcom(dag_run, "rollout.rollback", REPORT_XCOM_KEY) or []}


def number_writes(state, number: str) -> list[Any]:
    """The inbound agents written to ``number``, in order (answered or not)."""
    return [
        entry["body"].get("inbound_agent")
        for entry in state.journal(method="POST", path="/v1/numbers/update")
        if parse_qs(entry["query"]).get("phone_number") == [number]
    ]


def failing_after(action: Any = None):
    """
    For ``rollout_dag(after=...)``: a guarded smoke test that runs ``action`` (a colleague's edit, a
    fault for the rollback to meet...) and then fails, so that the rollback runs.
    """

    def make():
        from airflow.sdk import task

        @task(retries=0)
        def smoke_test():
            if action is not None:
                action()
            raise RuntimeError("the smoke test after the rollout failed")

        return smoke_test()

    return make


failing_task = failing_after()


# ---- the forward path ----------------------------------------------------------------------------


def test_a_rollout_plans_applies_in_waves_and_verifies(fluents_tines_sandbox, airflow_db):
    state = fluents_tines_sandbox.state
    changes = [
        *numbers_to("agt_front_desk_v2"),
        Change("tines.action", 90005, {"disabled": False, "options": {"subject": "New subject"}}),
    ]
    dag_run = run_dag(rollout_dag("rollout_forward", changes, waves=[1, 0.5, 1.0]))
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["rollout.rollback"] == "skipped" and states["rollout.result"] == "success"
    plan = xcom(dag_run, "rollout.plan")
    assert plan["waves"] == [1, 2, 1]
    entry = plan["entries"][0]
    assert entry["key"] == "fluents.number:+14155550101" and entry["snapshot"] == {
        "inbound_agent": "agt_front_desk_v1"
    }
    tines = plan["entries"][3]
    assert tines["snapshot"]["disabled"] is True and tines["snapshot"]["options"]["subject"]
    assert "inbound_agent" in xcom(dag_run, "rollout.plan", TABLE_XCOM_KEY)
    assert [r["status"] for r in xcom(dag_run, "rollout.apply_wave_2", RESULTS_XCOM_KEY)] == ["applied"] * 2
    assert set(agents(state).values()) == {"agt_front_desk_v2"}
    assert state.snapshot()["tines"]["actions"][90005]["options"]["subject"] == "New subject"
    # Each object written once; reads, writes and verification reads of the actions all paced by one budget.
    assert len(state.journal(method="PUT", path="/api/v1/actions/90005")) == 1
    assert all(len(number_writes(state, number)) == 1 for number in NUMBERS)


def test_an_invalid_change_writes_nothing_and_names_it(fluents_tines_sandbox, airflow_db):
    changes = [*numbers_to("agt_front_desk_v2"), {"kind": "tines.action", "id": 90005, "fields": "{{ 'x' }}"}]
    with pytest.raises(Exception, match=r"changes\[3\]\.fields"):
        rollout_dag("rollout_invalid_literal", changes)
    bad_type = [*numbers_to("agt_front_desk_v2"), Change("tines.action", 90005, {"num_runs_to_save": 5})]
    dag_run = run_dag(rollout_dag("rollout_invalid_type", bad_type))
    assert task_states(dag_run)["rollout.plan"] == "failed"
    assert str(dag_run.state) == "failed"
    assert fluents_tines_sandbox.state.journal(method="POST") == []
    assert fluents_tines_sandbox.state.journal(method="PUT") == []


# ---- the way back ----------------------------------------------------------------------------------


def test_a_failed_smoke_test_rolls_every_wave_back(fluents_tines_sandbox, airflow_db):
    state = fluents_tines_sandbox.state
    before = agents(state)
    dag_run = run_dag(rollout_dag("rollout_guarded", numbers_to("agt_front_desk_v2"), after=failing_task))
    states = task_states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["rollout.verify_wave_2"] == "success" and states["smoke_test"] == "failed"
    assert states["rollout.rollback"] == "success" and states["rollout.result"] == "failed"
    assert agents(state) == before
    assert set(report_of(dag_run).values()) == {"restored"}
    for number in NUMBERS:
        assert number_writes(state, number) == ["agt_front_desk_v2", "agt_front_desk_v1"]


def test_a_task_retry_after_a_landed_write_still_rolls_it_back(fluents_tines_sandbox, airflow_db):
    """Try 1's write times out after the server applied it; try 2 finds it done; the snapshot still holds."""
    state = fluents_tines_sandbox.state
    before = agents(state)
    # The canary's write lands 2 s after the request, past the hook's 1 s timeout (one attempt).
    state.add_fault(method="POST", path="/v1/numbers/update", delay=2.0, count=1)
    hook = {"timeout": 1.0, "max_attempts": 1, "max_retry_wait": 0}
    dag = rollout_dag(
        "rollout_retry",
        numbers_to("agt_front_desk_v2"),
        after=failing_task,
        hook_params=hook,
        task_kwargs={
            "retries": 2,
            "retry_delay": timedelta(seconds=3),
        },  # try 2 starts after the write landed
    )
    dag_run = run_dag(dag)
    states = task_states(dag_run)
    assert states["rollout.apply_wave_1"] == "success" and states["smoke_test"] == "failed"
    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "rollout.apply_wave_1")
    assert ti.try_number >= 2, "the first try was meant to fail on the late answer"
    # Try 2 found the write landed; on Airflow 3.3 the intent try 1 recorded in the task state store says it was ours.
    from airflow_provider_fluents_tines.version_compat import AIRFLOW_V_3_3_PLUS

    landed = "applied" if AIRFLOW_V_3_3_PLUS else "already_in_state"
    assert [r["status"] for r in xcom(dag_run, "rollout.apply_wave_1", RESULTS_XCOM_KEY)] == [landed]
    assert agents(state) == before
    assert report_of(dag_run)[f"fluents.number:{NUMBERS[0]}"] == "restored"


def test_a_write_landing_late_is_restored_inside_the_settle_window(fluents_tines_sandbox, airflow_db):
    state = fluents_tines_sandbox.state
    before = agents(state)
    # Every write answers after 6 s (it lands then); the hook gives up after 1 s. The task's three
    # tries each send one (none sees the first one landed yet: a try starts at once), and fail.
    state.add_fault(method="POST", path="/v1/numbers/update", delay=6.0, count=3)
    hook = {"timeout": 1.0, "max_attempts": 1, "max_retry_wait": 0}
    dag = rollout_dag(
        "rollout_late",
        numbers_to("agt_front_desk_v2", NUMBERS[:1]),
        hook_params=hook,
        waves=[1],
        settle_seconds=8.0,
    )
    dag_run = run_dag(dag)
    states = task_states(dag_run)
    assert states["rollout.apply_wave_1"] == "failed" and states["rollout.rollback"] == "success", states
    apply = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "rollout.apply_wave_1")
    assert apply.try_number == 3
    assert agents(state) == before
    # The late writes landed after the rollback's first read, and were restored after them.
    writes = number_writes(state, NUMBERS[0])
    assert writes[:3] == ["agt_front_desk_v2"] * 3 and writes[-1] == "agt_front_desk_v1", writes
    assert report_of(dag_run) == {f"fluents.number:{NUMBERS[0]}": "restored"}


def test_a_second_write_failing_stops_the_wave_and_rolls_back_the_first(fluents_tines_sandbox, airflow_db):
    state = fluents_tines_sandbox.state
    before = agents(state)
    dag = rollout_dag("rollout_second_fails", numbers_to("agt_front_desk_v2"), waves=[3])
    # Faults match by path: the first number's write goes through, the second's is answered 503 on
    # each of its 6 attempts (2 per hook call, 3 tries of the task); the rollback's write gets through.
    state.add_fault(method="POST", path="/v1/numbers/update", delay=0.01, count=1)
    state.add_fault(method="POST", path="/v1/numbers/update", status=503, count=6)
    dag_run = run_dag(dag)
    states = task_states(dag_run)
    assert states["rollout.apply_wave_1"] == "failed" and states["rollout.result"] == "failed"
    results = xcom(dag_run, "rollout.apply_wave_1", RESULTS_XCOM_KEY)
    from airflow_provider_fluents_tines.version_compat import AIRFLOW_V_3_3_PLUS

    # The last try found the first number written by an earlier try (3.3: the intent it recorded says so).
    first = "applied" if AIRFLOW_V_3_3_PLUS else "already_in_state"
    assert [r["status"] for r in results] == [first, "failed", "not_attempted"]
    assert "503" in results[1]["message"]
    state.clear_faults()
    assert agents(state) == before
    assert number_writes(state, NUMBERS[2]) == [], "the third number was never to be written"
    report = report_of(dag_run)
    assert report[f"fluents.number:{NUMBERS[0]}"] == "restored"
    # Never written, and at its snapshot. Before 3.3 (no record of intent) an earlier try may have.
    assert report[f"fluents.number:{NUMBERS[2]}"] == ("untouched" if AIRFLOW_V_3_3_PLUS else "restored")


def test_a_refused_write_is_reported_untouched_not_restored(fluents_tines_sandbox, airflow_db):
    """The API refuses wave 2's write (422): the object was never changed, and the report says so."""
    state = fluents_tines_sandbox.state
    state.add_fault(method="PUT", path="/api/v1/actions/90005", status=422, count=100)
    changes = [
        *numbers_to("agt_front_desk_v2", NUMBERS[:1]),
        Change("tines.action", 90005, {"disabled": False}),
    ]
    dag_run = run_dag(rollout_dag("rollout_refused", changes))
    results = xcom(dag_run, "rollout.apply_wave_2", RESULTS_XCOM_KEY)
    assert [(r["status"], r["maybe_written"]) for r in results] == [("failed", False)]
    assert report_of(dag_run) == {
        f"fluents.number:{NUMBERS[0]}": "restored",
        "tines.action:90005": "untouched",
    }
    assert state.snapshot()["tines"]["actions"][90005]["disabled"] is True


def test_the_rollback_does_not_need_the_changes_to_render_as_they_did(
    fluents_tines_sandbox, airflow_db, monkeypatch
):
    """A Variable the changes use is edited during a failing rollout: the way back comes from the plan."""
    state = fluents_tines_sandbox.state
    before = agents(state)
    monkeypatch.setenv("AIRFLOW_VAR_ROLLOUT_AGENT", "agt_front_desk_v2")

    def edit_the_variable() -> None:
        import os

        os.environ["AIRFLOW_VAR_ROLLOUT_AGENT"] = "agt_after_hours"

    changes = [
        {"kind": "fluents.number", "id": number, "fields": {"inbound_agent": "{{ var.value.rollout_agent }}"}}
        for number in NUMBERS
    ]
    dag_run = run_dag(rollout_dag("rollout_rerendered", changes, after=failing_after(edit_the_variable)))
    assert task_states(dag_run)["rollout.rollback"] == "success"
    assert set(report_of(dag_run).values()) == {"restored"}
    assert agents(state) == before


def test_a_verification_timeout_rolls_back(fluents_tines_sandbox, airflow_db):
    state = fluents_tines_sandbox.state
    before = agents(state)
    # Writes show 3 s after they land: the verification gives up first, and the rollback's first
    # read still shows the old value; its settle window (the lag and more) sees the write and undoes it.
    state.configure(visibility_lag=3.0)
    dag = rollout_dag(
        "rollout_verify_timeout",
        numbers_to("agt_front_desk_v2", NUMBERS[:1]),
        waves=[1],
        verify_timeout=1,
        visibility_lag=3.0,
        settle_seconds=4.0,
    )
    dag_run = run_dag(dag)
    states = task_states(dag_run)
    state.configure(visibility_lag=0.0)
    assert states["rollout.verify_wave_1"] == "failed" and states["rollout.rollback"] == "success", states
    assert agents(state) == before
    assert report_of(dag_run) == {f"fluents.number:{NUMBERS[0]}": "restored"}
    assert number_writes(state, NUMBERS[0]) == ["agt_front_desk_v2", "agt_front_desk_v1"]


def test_someone_elses_change_is_left_alone_and_reported(fluents_tines_sandbox, airflow_db):
    state = fluents_tines_sandbox.state

    def colleague_edits() -> None:
        state.update_fluents_number(NUMBERS[0], {"inbound_agent": "agt_after_hours"})

    dag_run = run_dag(
        rollout_dag("rollout_conflict", numbers_to("agt_front_desk_v2"), after=failing_after(colleague_edits))
    )
    report = report_of(dag_run)
    assert report[f"fluents.number:{NUMBERS[0]}"] == "conflict"
    assert report[f"fluents.number:{NUMBERS[1]}"] == report[f"fluents.number:{NUMBERS[2]}"] == "restored"
    assert task_states(dag_run)["rollout.rollback"] == "failed" and str(dag_run.state) == "failed"
    assert agents(state) == {
        NUMBERS[0]: "agt_after_hours",
        NUMBERS[1]: "agt_front_desk_v1",
        NUMBERS[2]: "agt_front_desk_v1",
    }


def test_a_value_that_keeps_moving_back_is_reported_unsettled(fluents_tines_sandbox, airflow_db):
    """Writes of the rollout's value keep landing through the whole settle window: never called restored."""
    import threading

    state = fluents_tines_sandbox.state
    stop = threading.Event()

    def writes_keep_landing() -> None:
        def keep_landing() -> None:
            while not stop.wait(0.02):
                state.update_fluents_number(NUMBERS[0], {"inbound_agent": "agt_front_desk_v2"})

        threading.Thread(target=keep_landing, daemon=True).start()

    dag = rollout_dag(
        "rollout_unsettled",
        numbers_to("agt_front_desk_v2", NUMBERS[:1]),
        waves=[1],
        after=failing_after(writes_keep_landing),
    )
    try:
        dag_run = run_dag(dag)
    finally:
        stop.set()
    assert report_of(dag_run) == {f"fluents.number:{NUMBERS[0]}": "unsettled"}
    assert task_states(dag_run)["rollout.rollback"] == "failed" and str(dag_run.state) == "failed"
    # It kept restoring while the window lasted, and no longer.
    assert number_writes(state, NUMBERS[0]).count("agt_front_desk_v1") >= 2


def test_a_null_old_value_is_refused_by_the_plan_unless_opted_in(fluents_tines_sandbox, airflow_db):
    state = fluents_tines_sandbox.state
    seed = default_seed()
    seed["fluents"]["numbers"][0]["label"] = None
    state.reset(seed)
    changes = [Change("fluents.number", NUMBERS[0], {"label": "Canary line"})]
    dag_run = run_dag(rollout_dag("rollout_null_refused", changes, waves=[1]))
    assert task_states(dag_run)["rollout.plan"] == "failed"
    assert state.journal(method="POST") == []

    dag_run = run_dag(
        rollout_dag("rollout_null_allowed", changes, waves=[1], allow_unrestorable=True, after=failing_task)
    )
    assert report_of(dag_run) == {f"fluents.number:{NUMBERS[0]}": "unrestorable"}
    assert str(dag_run.state) == "failed"


def test_a_field_the_api_does_not_show_is_reported_unrestorable_not_restored(
    fluents_tines_sandbox, airflow_db
):
    """Every read of the number leaves its label out: the rollback cannot tell it was put back."""
    import json

    state = fluents_tines_sandbox.state
    shown = dict(state.snapshot()["fluents"]["numbers"][NUMBERS[0]])
    del shown["label"]
    state.add_fault(method="GET", path="/v1/numbers", status=200, body=json.dumps(shown), count=1000)
    changes = [Change("fluents.number", NUMBERS[0], {"label": "Canary line"})]
    dag_run = run_dag(rollout_dag("rollout_not_shown_refused", changes, waves=[1]))
    assert task_states(dag_run)["rollout.plan"] == "failed"
    assert state.journal(method="POST") == []

    dag = rollout_dag(
        "rollout_not_shown_allowed", changes, waves=[1], allow_unrestorable=True, verify_timeout=1
    )
    dag_run = run_dag(dag)
    states = task_states(dag_run)
    state.clear_faults()
    assert states["rollout.apply_wave_1"] == "success" and states["rollout.verify_wave_1"] == "failed", states
    labels = [entry["body"].get("label") for entry in state.journal(method="POST", path="/v1/numbers/update")]
    assert labels == ["Canary line"], "the label was meant to be written once, and never restored"
    assert report_of(dag_run) == {f"fluents.number:{NUMBERS[0]}": "unrestorable"}
    assert states["rollout.rollback"] == "failed" and str(dag_run.state) == "failed"


def test_the_rollback_retried_restores_once_the_api_answers(fluents_tines_sandbox, airflow_db):
    state = fluents_tines_sandbox.state
    before = agents(state)

    def break_writes() -> None:
        # The rollback's first try meets 503s (the hook's two attempts); its second try gets through.
        state.add_fault(method="POST", path="/v1/numbers/update", status=503, count=2)

    dag = rollout_dag(
        "rollout_rollback_retry",
        numbers_to("agt_front_desk_v2", NUMBERS[:1]),
        waves=[1],
        settle_seconds=0.0,
        visibility_lag=0.0,
        after=failing_after(break_writes),
    )
    dag_run = run_dag(dag)
    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "rollout.rollback")
    assert ti.state == "success" and ti.try_number == 2
    assert agents(state) == before
    assert number_writes(state, NUMBERS[0]) == ["agt_front_desk_v2"] + ["agt_front_desk_v1"] * 3


def test_a_run_marked_failed_between_tries_of_a_wave_still_rolls_back(
    fluents_tines_sandbox, airflow_db, monkeypatch
):
    """
    Wave 2's write fails and its task waits for a retry when a person marks the run failed (the UI's
    "Mark as failed", through Airflow's REST API): every pending task is skipped, none failed. The
    rollback, a teardown, still runs, and must undo wave 1.
    """
    import threading
    import time

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    state = fluents_tines_sandbox.state
    before = agents(state)
    state.add_fault(method="POST", path="/v1/numbers/update", delay=0.01, count=1)  # the canary's write
    state.add_fault(method="POST", path="/v1/numbers/update", status=503, count=2)  # wave 2's first try
    dag = rollout_dag(
        "rollout_marked_failed",
        numbers_to("agt_front_desk_v2"),
        task_kwargs={"retries": 2, "retry_delay": timedelta(seconds=120)},
    )
    marked: dict[str, Any] = {}

    def mark_the_run_failed_once_wave_2_waits() -> None:
        from airflow.api_fastapi.app import create_app
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from fastapi.testclient import TestClient

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = (
                    session.query(TaskInstance)
                    .filter_by(dag_id="rollout_marked_failed", task_id="rollout.apply_wave_2")
                    .one_or_none()
                )
                if ti is not None and str(ti.state) == "up_for_retry":
                    with TestClient(create_app("core")) as client:
                        marked["answer"] = client.patch(
                            f"/api/v2/dags/rollout_marked_failed/dagRuns/{ti.run_id}",
                            json={"state": "failed"},
                        )
                    return
            time.sleep(0.2)
        marked["answer"] = "apply_wave_2 never waited for a retry"

    person = threading.Thread(target=mark_the_run_failed_once_wave_2_waits, daemon=True)
    person.start()
    dag_run = run_dag(dag)
    person.join(timeout=30)
    assert getattr(marked.get("answer"), "status_code", None) == 200, marked
    states = task_states(dag_run)
    assert states["rollout.apply_wave_2"] == "skipped" and states["rollout.rollback"] == "success", states
    # Nothing but the result failed: it fails the run, which the restored rollback would leave successful.
    assert [name for name, task_state in states.items() if task_state == "failed"] == ["rollout.result"]
    assert agents(state) == before
    assert report_of(dag_run)[f"fluents.number:{NUMBERS[0]}"] == "restored"
    assert str(dag_run.state) == "failed"


def test_a_colleagues_change_before_its_wave_is_not_taken_for_the_rollouts(fluents_tines_sandbox, airflow_db):
    """
    Between the plan and wave 2, a colleague sets the second number to the desired agent: wave 2
    finds it in state and writes nothing. No try wrote it, so the rollback leaves it as they set it.
    """
    import threading
    import time

    state = fluents_tines_sandbox.state
    first, second = NUMBERS[0], NUMBERS[1]
    stop = threading.Event()

    def colleague() -> None:
        while not stop.is_set():
            if number_writes(state, first):  # wave 1 has written
                state.update_fluents_number(second, {"inbound_agent": "agt_front_desk_v2"})
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=colleague, daemon=True)
    watcher.start()
    dag = rollout_dag(
        "rollout_colleague_first", numbers_to("agt_front_desk_v2", (first, second)), after=failing_task
    )
    try:
        dag_run = run_dag(dag)
    finally:
        stop.set()
    results = xcom(dag_run, "rollout.apply_wave_2", RESULTS_XCOM_KEY)
    assert [(r["status"], r["maybe_written"]) for r in results] == [("already_in_state", False)]
    assert report_of(dag_run) == {
        f"fluents.number:{first}": "restored",
        f"fluents.number:{second}": "conflict",
    }
    assert number_writes(state, second) == [], "the rollout never wrote it, nor may its rollback"
    assert agents(state)[second] == "agt_front_desk_v2" and agents(state)[first] == "agt_front_desk_v1"


def test_a_later_try_that_cannot_read_an_object_does_not_forget_an_earlier_tries_write(
    fluents_tines_sandbox, airflow_db
):
    """
    Try 1 writes action 90005, then 90007's write fails (503) and the task is retried; try 2's read
    of 90005 is answered 404 once. Try 2's results must still say 90005 may have been written.
    """
    state = fluents_tines_sandbox.state

    def disabled() -> dict[int, bool]:
        actions = state.snapshot()["tines"]["actions"]
        return {action: actions[action]["disabled"] for action in (90005, 90007)}

    before = disabled()
    changes = [
        Change("tines.action", 90005, {"disabled": False}),
        Change("tines.action", 90007, {"disabled": False}),
    ]
    # The plan's and try 1's reads of 90005 pass; try 2's is answered 404.
    state.add_fault(method="GET", path="/api/v1/actions/90005", delay=0.001, count=2)
    state.add_fault(method="GET", path="/api/v1/actions/90005", status=404, count=1)
    state.add_fault(method="PUT", path="/api/v1/actions/90007", status=503, count=2)  # try 1's two attempts
    dag_run = run_dag(rollout_dag("rollout_retry_read_404", changes, waves=[2]))
    results = xcom(dag_run, "rollout.apply_wave_1", RESULTS_XCOM_KEY)
    assert [(r["status"], r["maybe_written"]) for r in results] == [("failed", True), ("not_attempted", True)]
    assert len(state.journal(method="PUT", path="/api/v1/actions/90005")) == 2, "written, then restored"
    assert report_of(dag_run) == {"tines.action:90005": "restored", "tines.action:90007": "restored"}
    assert disabled() == before


def test_a_smoke_test_cleared_after_a_rollback_does_not_end_the_run_successful(
    fluents_tines_sandbox, airflow_db
):
    """
    The smoke test fails, the rollback restores every number. The smoke test is cleared and passes
    (the apply and verify tasks keep their success: they are not cleared with it). The rollout is
    not applied any more, so the run must not end successful.
    """
    state = fluents_tines_sandbox.state
    before = agents(state)
    tries: list[int] = []

    def flaky_smoke_test():
        from airflow.sdk import task

        @task(retries=0)
        def smoke_test():
            tries.append(1)
            if len(tries) == 1:
                raise RuntimeError("the smoke test failed once")

        return smoke_test()

    dag = rollout_dag("rollout_smoke_cleared", numbers_to("agt_front_desk_v2"), after=flaky_smoke_test)
    first = run_dag(dag)
    assert task_states(first)["rollout.rollback"] == "success" and agents(state) == before
    again = run_cleared(dag, first, mark_success_pattern=r"^rollout\.(apply|verify)_wave_\d$")
    states = task_states(again)
    assert states["smoke_test"] == "success" and states["rollout.rollback"] == "skipped", states
    assert states["rollout.result"] == "failed" and str(again.state) == "failed"
    assert agents(state) == before


# ---- approval (Airflow 3.1+: the standard provider's human-in-the-loop operators) ----------------


class Approver:
    """
    The person at the approval page, played from a thread while dag.test() runs: once the approval
    task waits, it records ``chosen`` through Airflow's REST API (the core API app, in process), or,
    with ``chosen=None``, lets the response deadline pass and runs the scheduler's timeout sweep.
    """

    def __init__(self, dag_id: str, task_id: str, chosen: list[str] | None):
        import threading

        self.dag_id, self.task_id, self.chosen = dag_id, task_id, chosen
        self.answer: Any = None
        self.shown: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(timeout=30)

    def _waiting_ti(self):
        import time

        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = (
                    session.query(TaskInstance)
                    .filter_by(dag_id=self.dag_id, task_id=self.task_id)
                    .one_or_none()
                )
                if ti is not None and str(ti.state) in ("awaiting_input", "deferred"):
                    return ti.run_id, ti.trigger_timeout
            time.sleep(0.2)
        raise TimeoutError(f"{self.task_id} never waited for input")

    def _run(self) -> None:
        try:
            self._answer()
        except BaseException as err:  # dag.test() would wait for the answer forever: end the task instead
            self.answer = err
            from airflow.models.taskinstance import TaskInstance
            from airflow.utils.session import create_session

            with create_session() as session:
                for ti in session.query(TaskInstance).filter_by(dag_id=self.dag_id, task_id=self.task_id):
                    ti.state = "failed"

    def _answer(self) -> None:
        import time

        run_id, timeout = self._waiting_ti()
        if self.chosen is not None:
            from airflow.api_fastapi.app import create_app
            from fastapi.testclient import TestClient

            path = f"/api/v2/dags/{self.dag_id}/dagRuns/{run_id}/taskInstances/{self.task_id}/-1/hitlDetails"
            with TestClient(create_app("core")) as client:
                self.shown = client.get(path).json()  # the page the person reads
                self.answer = client.patch(path, json={"chosen_options": self.chosen, "params_input": {}})
            return
        from datetime import datetime, timezone

        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.utils.session import create_session

        if timeout is not None:
            time.sleep(max(0.0, (timeout - datetime.now(timezone.utc)).total_seconds()) + 0.5)
        sweeper = SchedulerJobRunner.__new__(SchedulerJobRunner)  # the sweep uses only its logger
        with create_session() as session:
            SchedulerJobRunner.check_awaiting_input_timeouts(sweeper, session=session)
        self.answer = "swept"


needs_hitl = pytest.mark.skipif(
    not __import__("airflow_provider_fluents_tines.version_compat", fromlist=["x"]).AIRFLOW_V_3_1_PLUS,
    reason="human-in-the-loop operators need Airflow 3.1",
)


@needs_hitl
@pytest.mark.parametrize("chosen", [["Reject"], None], ids=["rejected", "timed_out"])
def test_an_approval_rejected_or_unanswered_writes_nothing_and_fails_the_run(
    fluents_tines_sandbox, airflow_db, monkeypatch, chosen
):
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    state = fluents_tines_sandbox.state
    dag_id = f"rollout_approval_{'rejected' if chosen else 'timed_out'}"
    dag = rollout_dag(
        dag_id, numbers_to("agt_front_desk_v2"), approval=True, approval_timeout=timedelta(seconds=2)
    )
    with Approver(dag_id, "rollout.approve", chosen) as approver:
        dag_run = run_dag(dag)
    if chosen:
        assert approver.answer.status_code == 200, approver.answer.text
    states = task_states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["rollout.approve"] == "failed" and states["rollout.apply_wave_1"] == "upstream_failed"
    assert states["rollout.rollback"] == "skipped" and states["rollout.result"] == "failed"
    assert state.journal(method="POST") == []


@needs_hitl
def test_an_approved_rollout_shows_the_plan_and_goes_ahead(fluents_tines_sandbox, airflow_db, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    dag = rollout_dag("rollout_approved", numbers_to("agt_front_desk_v2"), approval=True)
    with Approver("rollout_approved", "rollout.approve", ["Approve"]) as approver:
        dag_run = run_dag(dag)
    assert approver.answer.status_code == 200, approver.answer.text
    assert str(dag_run.state) == "success", task_states(dag_run)
    # What the approver was shown: the plan table, rendered into the approval's body.
    assert "agt_front_desk_v2" in xcom(dag_run, "rollout.plan", TABLE_XCOM_KEY)
    body = str(approver.shown.get("body"))
    assert "inbound_agent" in body and "agt_front_desk_v2" in body, approver.shown
    assert set(agents(fluents_tines_sandbox.state).values()) == {"agt_front_desk_v2"}


# ---- drift: the plan as a scheduled check ------------------------------------------------------


def test_a_drift_check_from_a_yaml_file_reports_and_writes_nothing(
    fluents_tines_sandbox, airflow_db, tmp_path
):
    from airflow.sdk import DAG

    from airflow_provider_fluents_tines.rollout import DriftCheckOperator, load_changes

    desired = tmp_path / "desired_state.yaml"
    desired.write_text(
        "changes:\n"
        "  - kind: fluents.number\n    id: '+14155550101'\n    fields: {inbound_agent: agt_front_desk_v1}\n"
        "  - kind: tines.action\n    id: 90005\n    fields: {disabled: false}\n"
    )
    with DAG("rollout_drift", schedule=None) as dag:
        DriftCheckOperator(task_id="drift", changes=load_changes(desired), on_drift="soft_fail")
    dag_run = run_dag(dag)
    assert task_states(dag_run)["drift"] == "skipped"  # 90005 is disabled: it drifted
    # A skipped task returns nothing: the table it pushed first names the drifted field, and only that one.
    table = xcom(dag_run, "drift", TABLE_XCOM_KEY)
    assert "tines.action:90005" in table and "disabled" in table and "inbound_agent" not in table
    state = fluents_tines_sandbox.state
    assert state.journal(method="POST") == [] and state.journal(method="PUT") == []


def test_links_the_rollout_sets_on_both_ends_are_not_conflicts(fluents_tines_sandbox, airflow_db):
    """Tines links are symmetric: A's new source B shows in B's receivers, which the rollout also changes."""
    state = fluents_tines_sandbox.state

    def links():
        actions = state.snapshot()["tines"]["actions"]
        return {
            i: (sorted(actions[i]["sources"]), sorted(actions[i]["receivers"])) for i in (90005, 90006, 90007)
        }

    before = links()
    changes = [
        Change("tines.action", 90006, {"source_ids": [*before[90006][0], 90007]}),
        Change("tines.action", 90007, {"receiver_ids": [*before[90007][1], 90006, 90005]}),
    ]
    dag_run = run_dag(rollout_dag("rollout_links", changes, after=failing_task))
    states = task_states(dag_run)
    assert states["rollout.apply_wave_2"] == "success", states  # B was not refused for A's link
    assert states["smoke_test"] == "failed" and states["rollout.rollback"] == "success"
    assert set(report_of(dag_run).values()) == {"restored"}
    assert links() == before


# ---- a cleared run: the plan, the waves and the rollback run again ------------------------------


def test_a_cleared_run_plans_from_its_first_snapshot_and_a_second_rollback_writes_nothing(
    fluents_tines_sandbox, airflow_db
):
    """
    The first attempt's writes land and its rollback never runs (marked success, as by hand). The
    run is cleared and runs again, as from the UI: its plan finds the numbers at the rollout's value,
    and must keep the first snapshot, not take that. Cleared once more with only the rollback (and
    the failing smoke test) running, the rollback finds every number restored and writes nothing.
    """
    state = fluents_tines_sandbox.state
    before = agents(state)
    dag = rollout_dag("rollout_cleared", numbers_to("agt_front_desk_v2"), after=failing_task)

    first = run_dag(dag, mark_success_pattern=r"^rollout\.rollback$")
    assert task_states(first)["smoke_test"] == "failed"
    assert set(agents(state).values()) == {"agt_front_desk_v2"}, "the first attempt was meant to stay applied"

    second = run_cleared(dag, first)
    assert second.run_id == first.run_id
    states = task_states(second)
    assert states["rollout.plan"] == "success" and states["rollout.rollback"] == "success", states
    plan = xcom(second, "rollout.plan")
    assert [entry["snapshot"] for entry in plan["entries"]] == [{"inbound_agent": "agt_front_desk_v1"}] * 3
    from airflow_provider_fluents_tines.version_compat import AIRFLOW_V_3_3_PLUS

    # Found in state; on 3.3 the intents the first attempt recorded say the rollout wrote them.
    landed = "applied" if AIRFLOW_V_3_3_PLUS else "already_in_state"
    assert [r["status"] for r in xcom(second, "rollout.apply_wave_2", RESULTS_XCOM_KEY)] == [landed] * 2
    assert agents(state) == before
    assert set(report_of(second).values()) == {"restored"}

    writes = len(state.journal(method="POST", path="/v1/numbers/update"))
    third = run_cleared(dag, second, mark_success_pattern=r"^rollout\.(plan|apply_wave_\d|verify_wave_\d)$")
    assert task_states(third)["rollout.rollback"] == "success"
    assert len(state.journal(method="POST", path="/v1/numbers/update")) == writes, "a second rollback wrote"
    assert agents(state) == before
    assert set(report_of(third).values()) == {"restored"}
    assert str(third.state) == "failed"
