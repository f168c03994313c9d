"""The request rules in ``validation``, called directly: no server, no Airflow task."""

from __future__ import annotations

import datetime
import math

import pytest

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.exceptions import InvalidFieldError


def fields_of(problems):
    return [problem.field for problem in problems]


# ---- defect 1: full-match semantics ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "+14155550101\n",
        "+14155550101\r\n",
        "\n+14155550101",
        "+1415555010\uff11",
        "+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0660\u0661",
        "+14155550101 ",
    ],
)
def test_e164_is_matched_whole(value):
    with pytest.raises(InvalidFieldError) as err:
        validation.phone_number(value)
    assert err.value.field == "phone_number"
    problems = validation.fluents_action_update_problems(
        {"type": "action_transfer_call", "config": {"phone_number": value}}
    )
    assert fields_of(problems) == ["config.phone_number"]


def test_e164_accepts_the_seed_examples():
    for value in ("+1234567890", "+14155550101", "+15550100", "+123456789012345"):
        assert validation.phone_number(value) == value


# ---- defect 2: trigger configs and schedule elements that are not objects ----------------------------


@pytest.mark.parametrize("config", ["junk", ["phrase_triggers"], 3, None])
@pytest.mark.parametrize("trigger_type", validation.FLUENTS_TRIGGER_TYPES)
def test_a_trigger_config_that_is_not_an_object_is_a_problem_not_a_crash(trigger_type, config):
    problems = validation.fluents_action_update_problems(
        {"action_trigger": {"type": trigger_type, "config": config}}
    )
    assert fields_of(problems) == ["action_trigger.config"]
    assert "must be an object" in problems[0].rule


def test_a_function_call_trigger_needs_no_config_and_takes_an_empty_one():
    for trigger in (
        {"type": "action_trigger_function_call"},
        {"type": "action_trigger_function_call", "config": {}},
    ):
        assert validation.fluents_action_update_problems({"action_trigger": trigger}) == []


@pytest.mark.parametrize("element", ["*/5 * * * *", 5, None, ["*/5 * * * *", "UTC"]])
def test_schedule_elements_must_be_objects(element):
    schedule = [{"cron": "0 * * * *", "timezone": "Europe/Dublin"}, element]
    problems = validation.tines_action_update_problems({"schedule": schedule})
    assert fields_of(problems) == ["schedule[1]"]


# ---- defect 3: values that cannot become JSON, named by path ----------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "words"),
    [
        ({"threshold": math.nan}, "options.threshold", "NaN is not valid JSON"),
        ({"a": {"b": [1, math.inf]}}, "options.a.b[1]", "Infinity is not valid JSON"),
        ({"a": -math.inf}, "options.a", "-Infinity is not valid JSON"),
        ({"when": datetime.datetime(2026, 1, 1)}, "options.when", "datetime is not valid JSON"),
        ({"tags": {"a", "b"}}, "options.tags", "set is not valid JSON"),
        ({"raw": b"x"}, "options.raw", "bytes is not valid JSON"),
        ({1: "a"}, "options", "key 1 is not a string"),
        ({"a": {None: 1}}, "options.a", "key None is not a string"),
    ],
)
def test_json_problems_name_the_path(value, path, words):
    (problem,) = validation.tines_action_update_problems({"options": value})
    assert problem.field == path
    assert words in problem.rule


def test_every_free_form_field_is_checked_for_json():
    nan = math.nan
    cases = [
        (validation.tines_action_update_problems, {"schedule": [{"cron": nan}]}, "schedule[0].cron"),
        (validation.tines_action_update_problems, {"schedule": {"cron": nan}}, "schedule.cron"),
        (
            validation.fluents_action_update_problems,
            {"type": "action_dtmf", "config": {"digits": {1, 2}}},
            "config.digits",
        ),
        (
            validation.fluents_action_update_problems,
            {"action_trigger": {"type": "action_trigger_function_call", "config": {"x": nan}}},
            "action_trigger.config.x",
        ),
        (
            validation.fluents_number_update_problems,
            {"example_context": {"region": nan}},
            "example_context.region",
        ),
        (
            validation.fluents_number_update_problems,
            {"example_context": {}, "inbound_agent": {"id": "agt_1", "prompt": {"t": nan}}},
            "inbound_agent.prompt.t",
        ),
    ]
    for function, body, path in cases:
        assert fields_of(function(body)) == [path], body


def test_json_check_refuses_cycles_and_depth_without_recursion_error():
    looped: dict = {}
    looped["self"] = looped
    (problem,) = validation.tines_action_update_problems({"options": looped})
    assert problem.field.startswith("options.self")
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert fields_of(validation.tines_action_update_problems({"options": {"deep": deep}}))


def test_json_check_accepts_json():
    options = {"a": [1, 2.5, -3, True, None, "s", {"b": []}], "c": (1, 2), "big": 2**80}
    assert validation.tines_action_update_problems({"options": options}) == []
    assert (
        validation.fluents_number_update_problems({"example_context": {"n": 1, "nested": {"a": "b"}}}) == []
    )


def test_an_int_too_long_to_write_is_refused():
    (problem,) = validation.tines_action_update_problems({"options": {"n": 10**5000}})
    assert problem.field == "options.n"


# ---- defect 4: ids and numbers fail with InvalidFieldError, whatever their size ---------------------


@pytest.mark.parametrize(
    "value",
    ["9" * 5000, 10**5000, 2**63, str(2**63), "0", 0, -1, True, "1e3", " 12", "\u0661\u0662"],
    ids=lambda value: (
        f"{type(value).__name__}-{len(value) if isinstance(value, str) else value.bit_length()}"
    ),
)
def test_tines_ids_out_of_range_are_invalid_field_errors(value):
    with pytest.raises(InvalidFieldError) as err:
        validation.tines_action_id(value)
    assert err.value.field == "action_id"


def test_tines_ids_up_to_the_bound_are_accepted():
    assert validation.tines_action_id(2**63 - 1) == 2**63 - 1
    assert validation.tines_action_id(str(2**63 - 1)) == 2**63 - 1
    assert validation.tines_action_id("90002") == 90002


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"num_runs_to_save": 10**5000}, "num_runs_to_save"),
        ({"num_runs_to_save": 2**63}, "num_runs_to_save"),
        (
            {"monitor_failures": True, "monitor_all_events": True, "monitor_no_events_emitted": 10**5000},
            "monitor_no_events_emitted",
        ),
        ({"position": {"x": 10**5000, "y": 0}}, "position"),
        ({"source_ids": ["9" * 5000]}, "source_ids"),
        ({"receiver_ids": [2**63]}, "receiver_ids"),
        ({"links_to_receivers": [{"receiver_id": "9" * 5000}]}, "links_to_receivers[0]"),
    ],
)
def test_numbers_out_of_range_are_problems(body, field):
    assert fields_of(validation.tines_action_update_problems(body)) == [field]


# ---- defect 5: num_runs_to_save only on webhook and receive-email actions ---------------------------


def test_num_runs_to_save_needs_a_run_saving_type():
    for action_type in ("Agents::WebhookAgent", "Agents::IMAPAgent"):
        assert (
            validation.tines_action_update_problems({"num_runs_to_save": 5}, current_type=action_type) == []
        )
    (problem,) = validation.tines_action_update_problems(
        {"num_runs_to_save": 5}, current_type="Agents::HTTPRequestAgent"
    )
    assert problem.field == "num_runs_to_save"
    assert "Agents::HTTPRequestAgent" in problem.rule
    # Without the type (before the read), the rule cannot be checked and is not.
    assert validation.tines_action_update_problems({"num_runs_to_save": 5}) == []


# ---- defect 6: what the seed pages allow is not refused ---------------------------------------------


def test_config_without_type_is_checked_against_the_stored_type():
    body = {"config": {"phone_number": "+14155550177"}}
    assert validation.fluents_action_update_problems(body, current_type="action_transfer_call") == []
    assert fields_of(
        validation.fluents_action_update_problems({"config": {}}, current_type="action_transfer_call")
    ) == ["config.phone_number"]
    # Before the read, only the rules that do not need the type are checked.
    assert validation.fluents_action_update_problems({"config": {}}, type_pending=True) == []
    assert fields_of(validation.fluents_action_update_problems({"config": "x"}, type_pending=True)) == [
        "config"
    ]


def test_tines_ids_may_be_digit_strings_everywhere():
    body = {
        "links_to_receivers": [{"receiver_id": "90003", "type": "NO_MATCH"}],
        "links_to_sources": [{"source_id": "90001"}],
    }
    assert validation.tines_action_update_problems(body) == []
    assert validation.tines_action_update_problems({"source_ids": ["90001", 90002], "receiver_ids": []}) == []
    assert validation.tines_ids_as_ints(body) == {
        "links_to_receivers": [{"receiver_id": 90003, "type": "NO_MATCH"}],
        "links_to_sources": [{"source_id": 90001}],
    }
    assert validation.tines_ids_as_ints({"source_ids": ["90001", 90002], "name": "x"}) == {
        "source_ids": [90001, 90002],
        "name": "x",
    }
