"""The update operators against the sandbox; the request journal is the witness."""

from __future__ import annotations

import json

import pytest

from airflow_provider_fluents_tines.exceptions import ApiClientError, ApiRequestError, InvalidFieldError
from airflow_provider_fluents_tines.hooks.base import RetryPolicy
from airflow_provider_fluents_tines.hooks.fluents import FluentsHook
from airflow_provider_fluents_tines.operators.base import (
    DIFF_XCOM_KEY,
    PLANNED_REQUEST_XCOM_KEY,
    PREVIOUS_VALUES_XCOM_KEY,
    WRITTEN_VALUES_XCOM_KEY,
)
from airflow_provider_fluents_tines.operators.fluents import (
    FluentsUpdateActionOperator,
    FluentsUpdateNumberOperator,
)
from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator
from airflow_provider_fluents_tines.sandbox import default_seed
from airflow_provider_fluents_tines.version_compat import AirflowFailException

from .dag_runner import run_dag, task_states, xcom

TRANSFER = "3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11"
NUMBER = "+14155550101"


class RecordingTI:
    """The slice of a task instance these operators use: XCom push and pull, kept in a dict."""

    def __init__(self, pulled=None, written=None):
        self.pushed: dict[str, object] = {}
        self.pulled = {PREVIOUS_VALUES_XCOM_KEY: pulled, WRITTEN_VALUES_XCOM_KEY: written}

    def xcom_push(self, key, value):
        self.pushed[key] = value

    def xcom_pull(self, task_ids, key):
        return self.pulled.get(key)


def run(operator, ti=None):
    ti = ti or RecordingTI()
    return operator.execute({"ti": ti}), ti


def writes(sandbox):
    return [(e["method"], e["path"], e["body"]) for e in sandbox.state.journal() if e["method"] != "GET"]


# ---- validation: before any request, no task retries ------------------------------------------------

INVALID = [
    (FluentsUpdateActionOperator, {"action_id": TRANSFER, "action_type": "action_teleport"}, "action_type"),
    (
        FluentsUpdateActionOperator,
        {"action_id": TRANSFER, "action_type": "action_trigger_phrase_based"},
        "action_type",
    ),
    (
        FluentsUpdateActionOperator,
        {"action_id": TRANSFER, "action_type": "phrase_condition_type_contains"},
        "action_type",
    ),
    (
        FluentsUpdateActionOperator,
        {"action_id": TRANSFER, "action_type": "action_transfer_call", "config": {}},
        "config.phone_number",
    ),
    (
        FluentsUpdateActionOperator,
        {
            "action_id": TRANSFER,
            "action_type": "action_add_to_conference",
            "config": {"phone_number": "555-0100"},
        },
        "config.phone_number",
    ),
    (
        FluentsUpdateActionOperator,
        {"action_id": TRANSFER, "action_trigger": {"type": "on_a_whim"}},
        "action_trigger.type",
    ),
    (
        FluentsUpdateActionOperator,
        {
            "action_id": TRANSFER,
            "action_trigger": {"type": "action_trigger_phrase_based", "config": {"phrase_triggers": []}},
        },
        "action_trigger.config.phrase_triggers",
    ),
    (FluentsUpdateActionOperator, {"action_id": "", "label": "x"}, "action_id"),
    (FluentsUpdateNumberOperator, {"phone_number": "4155550101", "label": "x"}, "phone_number"),
    (FluentsUpdateNumberOperator, {"phone_number": NUMBER, "outbound_only": "yes"}, "outbound_only"),
    (FluentsUpdateNumberOperator, {"phone_number": NUMBER, "inbound_agent": 5}, "inbound_agent"),
    (FluentsUpdateNumberOperator, {"phone_number": NUMBER, "example_context": ["a"]}, "example_context"),
    (
        TinesUpdateActionOperator,
        {"action_id": 90002, "source_ids": [90001], "links_to_sources": [{"source_id": 90001}]},
        "links_to_sources",
    ),
    (
        TinesUpdateActionOperator,
        {"action_id": 90002, "receiver_ids": [90003], "links_to_receivers": [{"receiver_id": 90003}]},
        "links_to_receivers",
    ),
    (
        TinesUpdateActionOperator,
        {"action_id": 90002, "links_to_receivers": [{"receiver_id": 90003, "type": "LATER"}]},
        "links_to_receivers[0].type",
    ),
    (TinesUpdateActionOperator, {"action_id": 90002, "monitor_failures": True}, "monitor_failures"),
    (TinesUpdateActionOperator, {"action_id": 90002, "monitor_all_events": True}, "monitor_all_events"),
    (
        TinesUpdateActionOperator,
        {"action_id": 90002, "monitor_failures": True, "monitor_no_events_emitted": 60},
        "monitor_failures",
    ),
    (TinesUpdateActionOperator, {"action_id": 90002, "position": {"x": 1.5, "y": 2}}, "position"),
    (TinesUpdateActionOperator, {"action_id": 90002, "source_ids": [0]}, "source_ids"),
    (
        TinesUpdateActionOperator,
        {
            "action_id": 90002,
            "monitor_failures": True,
            "monitor_all_events": True,
            "monitor_no_events_emitted": -5,
        },
        "monitor_no_events_emitted",
    ),
    (TinesUpdateActionOperator, {"action_id": 90001, "num_runs_to_save": 0}, "num_runs_to_save"),
    (TinesUpdateActionOperator, {"action_id": "1/../2", "name": "x"}, "action_id"),
    (TinesUpdateActionOperator, {"action_id": -4, "name": "x"}, "action_id"),
    (TinesUpdateActionOperator, {"action_id": 90002}, "fields"),
    (TinesUpdateActionOperator, {"action_id": 90002, "name": "x", "restore_from": "forward"}, "restore_from"),
]


@pytest.mark.parametrize(("operator_class", "kwargs", "field"), INVALID)
def test_invalid_input_fails_without_retries_and_sends_nothing(
    fluents_tines_sandbox, operator_class, kwargs, field
):
    operator = operator_class(task_id="t", **kwargs)
    with pytest.raises(InvalidFieldError) as err:
        run(operator)
    assert err.value.field == field
    assert isinstance(err.value, AirflowFailException)
    assert str(err.value).startswith(f"{field}: ")
    assert fluents_tines_sandbox.state.journal() == []


# ---- what is sent ----------------------------------------------------------------------------------


def test_partial_body_sends_only_the_fields_given(fluents_tines_sandbox):
    result, ti = run(TinesUpdateActionOperator(task_id="t", action_id=90006, name="Open case (v2)"))
    assert writes(fluents_tines_sandbox) == [("PUT", "/api/v1/actions/90006", {"name": "Open case (v2)"})]
    assert result["name"] == "Open case (v2)"
    assert ti.pushed[PREVIOUS_VALUES_XCOM_KEY] == {
        "object_id": 90006,
        "fields": {"name": "Open case in ticketing"},
    }


def test_explicit_none_is_sent_and_not_given_is_not(fluents_tines_sandbox):
    result, ti = run(FluentsUpdateNumberOperator(task_id="t", phone_number=NUMBER, inbound_agent=None))
    ((_, _, body),) = writes(fluents_tines_sandbox)
    assert body == {"inbound_agent": None, "example_context": {"region": "us-west", "queue": "support"}}
    assert result["inbound_agent"] is None
    assert ti.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"] == {"inbound_agent": "agt_front_desk_v1"}


def test_number_update_keeps_example_context_by_read_modify_write(fluents_tines_sandbox):
    run(FluentsUpdateNumberOperator(task_id="t", phone_number=NUMBER, label="West"))
    journal = [(e["method"], e["path"], e["body"]) for e in fluents_tines_sandbox.state.journal()]
    assert journal == [
        ("GET", "/v1/numbers", None),
        (
            "POST",
            "/v1/numbers/update",
            {"label": "West", "example_context": {"region": "us-west", "queue": "support"}},
        ),
    ]
    run(FluentsUpdateNumberOperator(task_id="t", phone_number=NUMBER, example_context={"region": "emea"}))
    assert writes(fluents_tines_sandbox)[-1][2] == {"example_context": {"region": "emea"}}


def test_action_update_sends_type_with_config(fluents_tines_sandbox):
    config = {"phone_number": "+14155550177"}
    result, ti = run(
        FluentsUpdateActionOperator(
            task_id="t", action_id=TRANSFER, action_type="action_transfer_call", config=config
        )
    )
    assert writes(fluents_tines_sandbox) == [
        ("POST", "/v1/actions/update", {"type": "action_transfer_call", "config": config})
    ]
    assert result["config"] == config
    # type did not change, but it is recorded with config so that a restore passes the API's rules.
    assert ti.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"] == {
        "config": {"phone_number": "+14155550190"},
        "type": "action_transfer_call",
    }


def test_already_up_to_date_sends_no_write_and_returns_the_object(fluents_tines_sandbox):
    result, ti = run(TinesUpdateActionOperator(task_id="t", action_id=90005, disabled=True))
    assert writes(fluents_tines_sandbox) == []
    assert result["id"] == 90005 and result["disabled"] is True
    assert ti.pushed[PREVIOUS_VALUES_XCOM_KEY] == {"object_id": 90005, "fields": {}}
    run(FluentsUpdateNumberOperator(task_id="t", phone_number=NUMBER, inbound_agent="agt_front_desk_v1"))
    assert writes(fluents_tines_sandbox) == []  # the embedded agent object compares by its id


def test_force_writes_anyway(fluents_tines_sandbox):
    run(TinesUpdateActionOperator(task_id="t", action_id=90005, disabled=True, force=True))
    assert writes(fluents_tines_sandbox) == [("PUT", "/api/v1/actions/90005", {"disabled": True})]


def test_dry_run_plans_and_writes_nothing(fluents_tines_sandbox):
    operator = TinesUpdateActionOperator(
        task_id="t", action_id=90005, disabled=False, name="Escalate to on-call", dry_run=True
    )
    result, ti = run(operator)
    assert writes(fluents_tines_sandbox) == []
    assert result["disabled"] is True
    assert ti.pushed[PLANNED_REQUEST_XCOM_KEY] == {
        "method": "PUT",
        "path": "/api/v1/actions/90005",
        "params": {},
        "body": {"disabled": False, "name": "Escalate to on-call"},
    }
    assert ti.pushed[DIFF_XCOM_KEY] == [{"field": "disabled", "current": True, "requested": False}]
    assert PREVIOUS_VALUES_XCOM_KEY not in ti.pushed


def test_previous_values_hold_exactly_the_changed_fields_and_rule_companions(fluents_tines_sandbox):
    operator = TinesUpdateActionOperator(
        task_id="t",
        action_id=90003,
        name="Enrich sender reputation",
        monitor_failures=False,
        monitor_all_events=False,
    )
    _, ti = run(operator)
    # name and monitor_all_events did not change; monitor_all_events travels with monitor_failures.
    assert ti.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"] == {
        "monitor_failures": True,
        "monitor_all_events": False,
    }


def test_source_ids_are_restorable_with_their_link_types(fluents_tines_sandbox):
    run(
        TinesUpdateActionOperator(
            task_id="t", action_id=90006, links_to_sources=[{"source_id": 90004, "type": "NO_MATCH"}]
        )
    )
    _, ti = run(TinesUpdateActionOperator(task_id="t", action_id=90006, source_ids=[90003]))
    assert ti.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"] == {
        "links_to_sources": [{"source_id": 90004, "type": "NO_MATCH"}]
    }
    run(
        TinesUpdateActionOperator(task_id="r", action_id=90006, restore_from="t"),
        RecordingTI(pulled=ti.pushed[PREVIOUS_VALUES_XCOM_KEY]),
    )
    restored = fluents_tines_sandbox.state.snapshot()["tines"]["actions"][90006]
    assert restored["links_to_sources"] == [{"source_id": 90004, "link_type": "NO_MATCH"}]


def test_restore_from_writes_the_previous_values_back(fluents_tines_sandbox):
    _, forward = run(
        FluentsUpdateNumberOperator(
            task_id="fwd", phone_number=NUMBER, inbound_agent="agt_front_desk_v2", label="New"
        )
    )
    pulled = [None, forward.pushed[PREVIOUS_VALUES_XCOM_KEY]]  # as from a mapped task, one index without XCom
    result, _ = run(
        FluentsUpdateNumberOperator(task_id="rb", phone_number=NUMBER, restore_from="fwd"),
        RecordingTI(pulled),
    )
    assert (result["inbound_agent"], result["label"]) == ("agt_front_desk_v1", "Support line (West)")
    assert writes(fluents_tines_sandbox)[-1][2] == {
        "label": "Support line (West)",
        "inbound_agent": "agt_front_desk_v1",
        "example_context": {"region": "us-west", "queue": "support"},
    }


def test_restore_from_a_task_that_changed_nothing_writes_nothing(fluents_tines_sandbox):
    result, _ = run(
        FluentsUpdateNumberOperator(task_id="rb", phone_number=NUMBER, restore_from="fwd"), RecordingTI(None)
    )
    assert result["number"] == NUMBER
    assert writes(fluents_tines_sandbox) == []


def test_a_field_the_api_did_not_show_is_not_recorded_as_none(fluents_tines_sandbox):
    seed = fluents_tines_sandbox.state
    number = {"id": "n1", "user_id": "u", "number": NUMBER, "label": "Bare", "example_context": {}}
    seed.reset({"fluents": {"numbers": [number], "actions": [], "agents": []}})
    _, ti = run(
        FluentsUpdateNumberOperator(
            task_id="t", phone_number=NUMBER, description="Now described", label="Bare 2"
        )
    )
    # description had no previous value to record; a None would make the rollback's body invalid
    assert ti.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"] == {"label": "Bare"}
    run(
        FluentsUpdateNumberOperator(task_id="rb", phone_number=NUMBER, restore_from="t"),
        RecordingTI(ti.pushed[PREVIOUS_VALUES_XCOM_KEY]),
    )
    assert fluents_tines_sandbox.state.snapshot()["fluents"]["numbers"][NUMBER]["label"] == "Bare"


# ---- errors ----------------------------------------------------------------------------------------


def test_4xx_from_the_api_fails_without_task_retries(fluents_tines_sandbox):
    fluents_tines_sandbox.state.add_fault(method="PUT", path="/api/v1/actions/90006", status=422)
    with pytest.raises(ApiClientError) as err:
        run(TinesUpdateActionOperator(task_id="t", action_id=90006, name="x"))
    assert isinstance(err.value, AirflowFailException)
    assert len(writes(fluents_tines_sandbox)) == 1


def test_5xx_and_429_are_absorbed_by_the_hook_policy(fluents_tines_sandbox, monkeypatch):
    monkeypatch.setattr(RetryPolicy, "backoff", lambda self, failures: 0.01)
    fluents_tines_sandbox.state.add_fault(method="PUT", path="/api/v1/actions/90006", status=503)
    fluents_tines_sandbox.state.add_fault(
        method="PUT", path="/api/v1/actions/90006", status=429, retry_after="0"
    )
    result, _ = run(TinesUpdateActionOperator(task_id="t", action_id=90006, name="Open case (v3)"))
    assert result["name"] == "Open case (v3)"
    assert len(writes(fluents_tines_sandbox)) == 3


# ---- real DAGs through dag.test() ----------------------------------------------------------------------


def test_templating_mapping_and_rollback_in_a_real_dag(fluents_tines_sandbox, airflow_db):
    from airflow.sdk import DAG, task

    with DAG("operators_e2e", schedule=None, params={"agent": "agt_front_desk_v2", "label": "Canary"}) as dag:
        canary = FluentsUpdateNumberOperator(
            task_id="canary",
            phone_number=NUMBER,
            inbound_agent="{{ params.agent }}",
            label="{{ params.label }}",
        )
        rest = FluentsUpdateNumberOperator.partial(task_id="rest", inbound_agent="{{ params.agent }}").expand(
            phone_number=["+14155550102", "+14155550103"]
        )

        @task
        def break_the_rollout():
            raise RuntimeError("a later step failed")

        rollback_rest = FluentsUpdateNumberOperator.partial(
            task_id="rollback_rest", restore_from="rest", trigger_rule="one_failed"
        ).expand(phone_number=["+14155550102", "+14155550103"])
        rollback_canary = FluentsUpdateNumberOperator(
            task_id="rollback_canary", phone_number=NUMBER, restore_from="canary", trigger_rule="one_failed"
        )
        failure = break_the_rollout()
        canary >> rest >> failure >> [rollback_rest, rollback_canary]
        [canary, rest] >> rollback_canary
        rest >> rollback_rest

    dag_run = run_dag(dag)
    states = task_states(dag_run)
    assert states["canary"] == states["rest[0]"] == states["rest[1]"] == "success"
    assert states["break_the_rollout"] == "failed"
    assert states["rollback_canary"] == states["rollback_rest[0]"] == states["rollback_rest[1]"] == "success"
    assert xcom(dag_run, "canary", PREVIOUS_VALUES_XCOM_KEY)["fields"] == {
        "inbound_agent": "agt_front_desk_v1",
        "label": "Support line (West)",
    }
    forward = [e["body"] for e in fluents_tines_sandbox.state.journal(method="POST")][:3]
    assert forward[0]["label"] == "Canary" and {b["inbound_agent"] for b in forward} == {"agt_front_desk_v2"}
    numbers = fluents_tines_sandbox.state.snapshot()["fluents"]["numbers"]
    for phone in (NUMBER, "+14155550102", "+14155550103"):
        assert numbers[phone]["inbound_agent"] == "agt_front_desk_v1"
    assert numbers[NUMBER]["label"] == "Support line (West)"


# ---- log lines --------------------------------------------------------------------------------------


def test_update_log_names_the_nested_leaf_that_changes(fluents_tines_sandbox, caplog, capsys):
    options = fluents_tines_sandbox.state.snapshot()["tines"]["actions"][90005]["options"]
    new_options = {**options, "subject": "New subject"}
    new_options.pop("body")
    run(TinesUpdateActionOperator(task_id="t", action_id=90005, options=new_options, dry_run=True))
    logged = caplog.text + capsys.readouterr().out
    assert 'options.subject: "High severity phishing report" -> "New subject"' in logged
    assert "options.body: " in logged and "-> <missing>" in logged  # the whole block is replaced
    assert "options.recipients" not in logged  # unchanged leaves are not listed
    # The dry run shows the body it would send, not the (empty) query.
    assert 'Would send PUT /api/v1/actions/90005 with body {"options": {"recipients": ' in logged


def test_hook_params_set_the_tasks_hook(fluents_tines_sandbox):
    # Two transient failures: the connection's retries would absorb them; hook_params allow one attempt.
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/90005", status=503, count=2)
    operator = TinesUpdateActionOperator(
        task_id="t", action_id=90005, name="x", hook_params={"max_attempts": 1, "timeout": 5}
    )
    with pytest.raises(ApiRequestError) as err:
        run(operator)
    assert err.value.http_status == 503
    assert len(fluents_tines_sandbox.state.journal(method="GET")) == 1
    assert not fluents_tines_sandbox.state.journal(method="PUT")
    assert operator.hook.settings.timeout == 5


def test_bad_hook_params_are_refused_before_any_request(fluents_tines_sandbox):
    operator = FluentsUpdateNumberOperator(
        task_id="t", phone_number="+14155550101", label="x", hook_params={"max_attempts": 0}
    )
    with pytest.raises(InvalidFieldError, match=r"^hook_params\.max_attempts: must be an integer >= 1"):
        run(operator)
    assert fluents_tines_sandbox.state.journal() == []


def test_an_up_to_date_number_with_an_odd_stored_context_is_left_alone(fluents_tines_sandbox):
    # The stored context is only sent back on a write: a task that writes nothing does not judge it.
    number = "+14155550101"
    stored = {**FluentsHook().get_number(number), "example_context": "not an object"}
    for _ in range(2):
        fluents_tines_sandbox.state.add_fault(
            method="GET", path="/v1/numbers", status=200, body=json.dumps(stored)
        )
    result, ti = run(FluentsUpdateNumberOperator(task_id="t", phone_number=number, label=stored["label"]))
    assert result["label"] == stored["label"] and ti.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"] == {}
    with pytest.raises(InvalidFieldError, match=r"^example_context: must be an object"):
        run(FluentsUpdateNumberOperator(task_id="t", phone_number=number, label=stored["label"] + " (new)"))
    assert writes(fluents_tines_sandbox) == []


def test_a_null_the_api_would_refuse_is_left_out_and_the_rest_is_restored(
    fluents_tines_sandbox, caplog, capsys
):
    # A number whose label was never set: the update API takes no null label, so a rollback could not
    # send it back. It used to be recorded, and the whole rollback then failed on it.
    seed = default_seed()
    seed["fluents"]["numbers"][0]["label"] = None
    fluents_tines_sandbox.state.reset(seed)
    number = seed["fluents"]["numbers"][0]["number"]
    _, forward = run(
        FluentsUpdateNumberOperator(
            task_id="fwd", phone_number=number, inbound_agent="agt_front_desk_v2", label="New"
        )
    )
    previous = forward.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"]
    assert previous == {"inbound_agent": "agt_front_desk_v1"}
    logged = caplog.text + "".join(capsys.readouterr())
    assert "label was None before, which the update API does not take" in logged
    result, _ = run(
        FluentsUpdateNumberOperator(task_id="rb", phone_number=number, restore_from="fwd"),
        RecordingTI(forward.pushed[PREVIOUS_VALUES_XCOM_KEY]),
    )
    assert (result["inbound_agent"], result["label"]) == ("agt_front_desk_v1", "New")


# ---- rollback: read, compare, write ------------------------------------------------------------------


def test_a_rollback_leaves_a_field_someone_else_changed_and_fails_naming_it(fluents_tines_sandbox):
    _, forward = run(
        FluentsUpdateNumberOperator(
            task_id="fwd", phone_number=NUMBER, inbound_agent="agt_front_desk_v2", label="New"
        )
    )
    written = forward.pushed[WRITTEN_VALUES_XCOM_KEY]
    assert written["fields"] == {"inbound_agent": "agt_front_desk_v2", "label": "New"}
    # A colleague renames the number between our write and the rollback.
    FluentsHook().update_number(NUMBER, label="Colleague's label", example_context={"region": "us-west"})
    with pytest.raises(
        AirflowFailException, match=r"left label alone: changed by someone else since task 'fwd'"
    ):
        run(
            FluentsUpdateNumberOperator(task_id="rb", phone_number=NUMBER, restore_from="fwd"),
            RecordingTI(forward.pushed[PREVIOUS_VALUES_XCOM_KEY], written),
        )
    number = FluentsHook().get_number(NUMBER)
    assert number["label"] == "Colleague's label"  # not overwritten
    assert number["inbound_agent"]["id"] == "agt_front_desk_v1"  # the rest is restored
    # Told to, it overwrites.
    result, _ = run(
        FluentsUpdateNumberOperator(
            task_id="rb", phone_number=NUMBER, restore_from="fwd", on_conflict="overwrite"
        ),
        RecordingTI(forward.pushed[PREVIOUS_VALUES_XCOM_KEY], written),
    )
    assert result["label"] == "Support line (West)"


def test_a_rollback_restores_a_field_that_still_shows_what_was_written(fluents_tines_sandbox):
    _, forward = run(
        TinesUpdateActionOperator(
            task_id="fwd", action_id=90005, monitor_failures=True, monitor_all_events=True
        )
    )
    before = forward.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"]
    result, _ = run(
        TinesUpdateActionOperator(task_id="rb", action_id=90005, restore_from="fwd"),
        RecordingTI(forward.pushed[PREVIOUS_VALUES_XCOM_KEY], forward.pushed[WRITTEN_VALUES_XCOM_KEY]),
    )
    assert {name: result[name] for name in before} == before


def test_on_conflict_takes_skip_or_overwrite():
    with pytest.raises(InvalidFieldError, match=r"^on_conflict: must be 'skip' or 'overwrite'"):
        FluentsUpdateNumberOperator(
            task_id="rb", phone_number=NUMBER, restore_from="fwd", on_conflict="merge"
        )
