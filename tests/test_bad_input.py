"""
Bad input reaching the update operators (issue #11, defects 1-6), against the sandbox: the request
journal is the witness that nothing was sent (or, for the rules that need the object's type, that
only the read was).
"""

from __future__ import annotations

import datetime
import math

import pytest

from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.operators.base import PREVIOUS_VALUES_XCOM_KEY
from airflow_provider_fluents_tines.operators.fluents import (
    FluentsUpdateActionOperator,
    FluentsUpdateNumberOperator,
)
from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator

TRANSFER = "3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11"
END_CONVERSATION = "7c9d2e4f-1a3b-4c5d-8e6f-0a1b2c3d4e5f"
NUMBER = "+14155550101"


class RecordingTI:
    def __init__(self):
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value

    def xcom_pull(self, task_ids, key):
        return None


def run(operator):
    ti = RecordingTI()
    return operator.execute({"ti": ti}), ti


def requests_sent(sandbox):
    return [(e["method"], e["path"], e["body"]) for e in sandbox.state.journal()]


def refused_before_any_request(sandbox, operator_class, field, **kwargs):
    with pytest.raises(InvalidFieldError) as err:
        run(operator_class(task_id="t", **kwargs))
    assert err.value.field == field, str(err.value)
    assert sandbox.state.journal() == []
    return err.value


# ---- 1. E.164 is matched whole ------------------------------------------------------------------------


def test_a_phone_number_with_a_trailing_newline_is_refused(fluents_tines_sandbox):
    refused_before_any_request(
        fluents_tines_sandbox,
        FluentsUpdateNumberOperator,
        "phone_number",
        phone_number=NUMBER + "\n",
        label="x",
    )
    refused_before_any_request(
        fluents_tines_sandbox,
        FluentsUpdateActionOperator,
        "config.phone_number",
        action_id=TRANSFER,
        action_type="action_transfer_call",
        config={"phone_number": "+14155550177\n"},
    )


# ---- 2. trigger configs and schedule elements that are not objects -----------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        {"type": "action_trigger_phrase_based", "config": "junk"},
        {"type": "action_trigger_phrase_based", "config": ["phrase_triggers"]},
        {"type": "action_trigger_function_call", "config": "junk"},
        {"type": "action_trigger_function_call", "config": [1]},
    ],
)
def test_a_trigger_config_that_is_not_an_object_is_refused(fluents_tines_sandbox, trigger):
    refused_before_any_request(
        fluents_tines_sandbox,
        FluentsUpdateActionOperator,
        "action_trigger.config",
        action_id=TRANSFER,
        action_trigger=trigger,
    )


def test_schedule_elements_that_are_not_objects_are_refused(fluents_tines_sandbox):
    refused_before_any_request(
        fluents_tines_sandbox,
        TinesUpdateActionOperator,
        "schedule[0]",
        action_id=90101,
        schedule=["0 * * * *"],
    )


# ---- 3. values that cannot become JSON -----------------------------------------------------------------


def test_nan_in_options_is_refused_naming_the_path(fluents_tines_sandbox):
    err = refused_before_any_request(
        fluents_tines_sandbox,
        TinesUpdateActionOperator,
        "options.threshold",
        action_id=90002,
        options={"threshold": math.nan},
    )
    assert str(err) == "options.threshold: NaN is not valid JSON"


@pytest.mark.parametrize(
    ("operator_class", "kwargs", "field"),
    [
        (TinesUpdateActionOperator, {"action_id": 90002, "options": {"n": [1, math.inf]}}, "options.n[1]"),
        (TinesUpdateActionOperator, {"action_id": 90002, "options": {3: "x"}}, "options"),
        (TinesUpdateActionOperator, {"action_id": 90101, "schedule": [{"cron": {"a"}}]}, "schedule[0].cron"),
        (
            FluentsUpdateActionOperator,
            {
                "action_id": TRANSFER,
                "action_type": "action_dtmf",
                "config": {"at": datetime.date(2026, 1, 1)},
            },
            "config.at",
        ),
        (
            FluentsUpdateActionOperator,
            {
                "action_id": TRANSFER,
                "action_trigger": {"type": "action_trigger_function_call", "config": {"x": math.nan}},
            },
            "action_trigger.config.x",
        ),
        (
            FluentsUpdateNumberOperator,
            {"phone_number": NUMBER, "example_context": {"at": {1, 2}}},
            "example_context.at",
        ),
    ],
)
def test_values_that_cannot_become_json_are_refused_before_the_read(
    fluents_tines_sandbox, operator_class, kwargs, field
):
    refused_before_any_request(fluents_tines_sandbox, operator_class, field, **kwargs)


# ---- 4. ids and numbers of any size fail with InvalidFieldError ---------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"action_id": "9" * 5000, "name": "x"}, "action_id"),
        ({"action_id": 2**63, "name": "x"}, "action_id"),
        ({"action_id": 90001, "num_runs_to_save": 10**5000}, "num_runs_to_save"),
        ({"action_id": 90002, "position": {"x": 10**5000, "y": 0}}, "position"),
        ({"action_id": 90002, "receiver_ids": ["9" * 5000]}, "receiver_ids"),
    ],
)
def test_huge_ids_and_numbers_are_invalid_field_errors(fluents_tines_sandbox, kwargs, field):
    refused_before_any_request(fluents_tines_sandbox, TinesUpdateActionOperator, field, **kwargs)


# ---- 5. num_runs_to_save on an action that saves no runs ----------------------------------------------


@pytest.mark.parametrize("dry_run", [False, True])
def test_num_runs_to_save_is_refused_after_the_read_for_other_types(fluents_tines_sandbox, dry_run):
    ti = RecordingTI()
    operator = TinesUpdateActionOperator(task_id="t", action_id=90002, num_runs_to_save=5, dry_run=dry_run)
    with pytest.raises(InvalidFieldError) as err:
        operator.execute({"ti": ti})
    assert err.value.field == "num_runs_to_save"
    assert "Agents::EventTransformationAgent" in err.value.rule
    assert requests_sent(fluents_tines_sandbox) == [("GET", "/api/v1/actions/90002", None)]
    assert ti.pushed == {}  # neither previous_values nor a plan


def test_num_runs_to_save_on_a_webhook_action_is_written(fluents_tines_sandbox):
    result, _ = run(TinesUpdateActionOperator(task_id="t", action_id=90001, num_runs_to_save=5))
    assert result["story_run_save_setting"] == {"num_runs_to_save": 5}


# ---- 6. what the seed pages allow is not refused --------------------------------------------------------


def test_config_without_action_type_is_checked_against_the_stored_type_and_sent_with_it(
    fluents_tines_sandbox,
):
    config = {"phone_number": "+14155550177"}
    result, ti = run(FluentsUpdateActionOperator(task_id="t", action_id=TRANSFER, config=config))
    assert requests_sent(fluents_tines_sandbox)[1] == (
        "POST",
        "/v1/actions/update",
        {"config": config, "type": "action_transfer_call"},
    )
    assert result["config"] == config
    assert ti.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"] == {
        "config": {"phone_number": "+14155550190"},
        "type": "action_transfer_call",
    }


def test_config_without_action_type_that_breaks_the_stored_types_rule_is_refused_before_the_write(
    fluents_tines_sandbox,
):
    ti = RecordingTI()
    with pytest.raises(InvalidFieldError) as err:
        FluentsUpdateActionOperator(task_id="t", action_id=TRANSFER, config={}).execute({"ti": ti})
    assert err.value.field == "config.phone_number"
    assert "action_transfer_call" in err.value.rule
    assert [method for method, _, _ in requests_sent(fluents_tines_sandbox)] == ["GET"]
    assert ti.pushed == {}


def test_config_without_action_type_on_a_type_without_phone(fluents_tines_sandbox):
    _, ti = run(FluentsUpdateActionOperator(task_id="t", action_id=END_CONVERSATION, config={}, dry_run=True))
    assert ti.pushed["planned_request"]["body"] == {"config": {}, "type": "action_end_conversation"}


def test_link_ids_given_as_digit_strings_are_accepted_and_sent_as_integers(fluents_tines_sandbox):
    run(
        TinesUpdateActionOperator(
            task_id="t", action_id=90006, links_to_sources=[{"source_id": "90004", "type": "NO_MATCH"}]
        )
    )
    run(TinesUpdateActionOperator(task_id="t", action_id=90002, receiver_ids=["90004"]))
    writes = [body for method, _, body in requests_sent(fluents_tines_sandbox) if method == "PUT"]
    assert writes == [
        {"links_to_sources": [{"source_id": 90004, "type": "NO_MATCH"}]},
        {"receiver_ids": [90004]},
    ]
    actions = fluents_tines_sandbox.state.snapshot()["tines"]["actions"]
    assert actions[90006]["links_to_sources"] == [{"source_id": 90004, "link_type": "NO_MATCH"}]
