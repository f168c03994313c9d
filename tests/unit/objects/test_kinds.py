"""The object model: each kind's requests, rules, completion, matching and way back. No sockets, no sleeps."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflow_provider_fluents_tines
from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.objects import Request
from airflow_provider_fluents_tines.objects.fluents import FLUENTS_ACTION, FLUENTS_NUMBER
from airflow_provider_fluents_tines.objects.tines import TINES_ACTION

# The package under test, wherever it is installed (the version matrix tests a wheel, not the source tree).
PACKAGE = Path(airflow_provider_fluents_tines.__file__).resolve().parent


def test_requests_address_each_kind_and_check_the_id_first():
    assert FLUENTS_ACTION.read_request("act_1") == Request("GET", "/v1/actions", {"id": "act_1"})
    assert FLUENTS_ACTION.update_request("act_1") == Request("POST", "/v1/actions/update", {"id": "act_1"})
    assert FLUENTS_NUMBER.read_request("+14155550101") == Request(
        "GET", "/v1/numbers", {"phone_number": "+14155550101"}
    )
    assert FLUENTS_NUMBER.update_request("+14155550101").path == "/v1/numbers/update"
    assert TINES_ACTION.read_request("0042") == Request("GET", "/api/v1/actions/42", {})
    assert TINES_ACTION.update_request(42).method == "PUT"
    for kind, bad, field in (
        (FLUENTS_ACTION, "act 1", "action_id"),
        (FLUENTS_NUMBER, "4155550101", "phone_number"),
        (TINES_ACTION, "../1", "action_id"),
    ):
        with pytest.raises(InvalidFieldError, match=rf"^{field}: "):
            kind.read_request(bad)


def test_each_kind_names_its_hook():
    assert FLUENTS_ACTION.hook_class().__name__ == "FluentsHook"
    assert FLUENTS_NUMBER.hook_class() is FLUENTS_ACTION.hook_class()
    assert TINES_ACTION.hook_class().__name__ == "TinesHook"


def test_the_type_rename_is_applied_once_in_errors():
    with pytest.raises(InvalidFieldError, match=r"^action_type: must be one of"):
        FLUENTS_ACTION.check_given({"type": "action_nope"})
    with pytest.raises(
        InvalidFieldError, match=r"^action_type: 'action_trigger_phrase_based' is a trigger type"
    ):
        FLUENTS_ACTION.check_update({"type": "action_trigger_phrase_based"})


def test_config_alone_waits_for_the_stored_type_then_travels_with_it():
    given = {"config": {"phone_number": "+14155550101"}}
    FLUENTS_ACTION.check_given(given)  # the type is read before the write
    with pytest.raises(InvalidFieldError, match=r"^config: needs the action type"):
        FLUENTS_ACTION.check_update(given)  # a body sent as is must carry it
    current = {"id": "act_1", "type": "action_transfer_call", "config": {"phone_number": "+14155550100"}}
    body = FLUENTS_ACTION.complete_body(given, current)
    assert body == {**given, "type": "action_transfer_call"}
    FLUENTS_ACTION.check_update(body, current=current)
    with pytest.raises(
        InvalidFieldError, match=r"^config.phone_number: is required for action_transfer_call"
    ):
        FLUENTS_ACTION.check_update(FLUENTS_ACTION.complete_body({"config": {}}, current), current=current)


def test_config_alone_on_an_action_of_an_unknown_stored_type_asks_for_action_type():
    current = {"id": "act_1", "type": "action_from_the_future"}
    body = FLUENTS_ACTION.complete_body({"config": {}}, current)
    with pytest.raises(
        InvalidFieldError, match=r"^config: cannot be checked against the action's stored type"
    ):
        FLUENTS_ACTION.check_update(body, current=current)


def test_a_number_update_keeps_the_stored_context_and_needs_one():
    FLUENTS_NUMBER.check_given({"label": "Front desk"})
    with pytest.raises(InvalidFieldError, match=r"^example_context: is required"):
        FLUENTS_NUMBER.check_update({"label": "Front desk"})
    current = {"number": "+14155550101", "example_context": {"queue": "support"}}
    body = FLUENTS_NUMBER.complete_body({"label": "Front desk"}, current)
    assert body == {"label": "Front desk", "example_context": {"queue": "support"}}
    assert FLUENTS_NUMBER.complete_body({"label": "x"}, {"example_context": None})["example_context"] == {}
    assert FLUENTS_NUMBER.complete_body({"example_context": {"a": 1}}, current)["example_context"] == {"a": 1}


def test_a_number_matches_by_agent_id_embedded_or_not():
    embedded = {"inbound_agent": {"id": "agt_1", "name": "Front desk"}, "telephony_account_connection": None}
    assert FLUENTS_NUMBER.normalize(embedded)["inbound_agent"] == "agt_1"
    assert FLUENTS_NUMBER.as_update_answer(embedded)["inbound_agent"] == "agt_1"
    assert FLUENTS_NUMBER.state_differences(embedded, {"inbound_agent": "agt_1"}) == []
    assert [d.path for d in FLUENTS_NUMBER.state_differences(embedded, {"inbound_agent": "agt_2"})] == [
        "inbound_agent"
    ]
    # An action is shown as read.
    assert FLUENTS_ACTION.as_update_answer({"id": "a", "config": {}}) == {"id": "a", "config": {}}


def test_a_tines_action_in_the_requests_vocabulary():
    read = {
        "sources": [1, 2],
        "receivers": [],
        "links_to_sources": {"source_id": 1, "link_type": "NO_MATCH"},
        "story_run_save_setting": {"num_runs_to_save": 5},
        "type": "Agents::WebhookAgent",
    }
    normalized = TINES_ACTION.normalize(read)
    assert normalized["source_ids"] == [1, 2] and normalized["receiver_ids"] == []
    assert normalized["links_to_sources"] == [{"source_id": 1, "type": "NO_MATCH"}]
    assert normalized["num_runs_to_save"] == 5
    assert TINES_ACTION.prepare_fields(
        {"source_ids": ["7", 8], "links_to_receivers": [{"receiver_id": "9"}]}
    ) == {
        "source_ids": [7, 8],
        "links_to_receivers": [{"receiver_id": 9}],
    }


def test_num_runs_to_save_is_refused_once_the_type_is_known():
    TINES_ACTION.check_given({"num_runs_to_save": 3})
    TINES_ACTION.check_update({"num_runs_to_save": 3}, current={"type": "Agents::WebhookAgent"})
    with pytest.raises(InvalidFieldError, match=r"^num_runs_to_save: applies only to"):
        TINES_ACTION.check_update(
            {"num_runs_to_save": 3}, current={"type": "Agents::EventTransformationAgent"}
        )


def test_the_way_back_restores_companions_and_links_with_their_types():
    observed = {
        "monitor_failures": True,
        "monitor_all_events": False,
        "links_to_sources": [],
        "source_ids": [],
    }
    assert TINES_ACTION.restored_fields(["monitor_failures"], observed) == [
        "monitor_failures",
        "monitor_all_events",
    ]
    assert TINES_ACTION.restored_fields(["source_ids"], observed) == ["links_to_sources"]
    assert TINES_ACTION.unrestorable({"monitor_no_events_emitted": None})
    assert (
        TINES_ACTION.unrestorable(
            {"monitor_no_events_emitted": 60, "monitor_failures": True, "monitor_all_events": True}
        )
        == {}
    )
    # Without the pair the API requires with it, even a valid value cannot be sent back.
    assert list(TINES_ACTION.unrestorable({"monitor_no_events_emitted": 60})) == ["monitor_no_events_emitted"]
    assert FLUENTS_ACTION.restored_fields(["config"], {"config": {}, "type": "t"}) == ["config", "type"]
    assert FLUENTS_ACTION.restored_fields(["config"], {"config": {}}) == ["config"]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize(("vendor", "other"), [("fluents", "tines"), ("tines", "fluents")])
def test_the_two_vendors_never_import_each_other(vendor, other):
    for folder in ("objects", "hooks", "operators", "sensors"):
        imported = _imported_modules(PACKAGE / folder / f"{vendor}.py")
        assert not [name for name in imported if name.rsplit(".", 1)[-1] == other], (folder, imported)


def test_old_values_the_update_api_refuses_are_unrestorable_with_what_needs_them():
    # Nulls the update's rules refuse: a rollback could not send them back.
    assert set(FLUENTS_NUMBER.unrestorable({"label": None, "description": "d", "outbound_only": False})) == {
        "label"
    }
    assert set(FLUENTS_ACTION.unrestorable({"description": None, "action_trigger": None, "label": "x"})) == {
        "description",
        "action_trigger",
    }
    assert TINES_ACTION.unrestorable({"description": None}) == {}  # Tines takes a null description
    why = TINES_ACTION.unrestorable(
        {"monitor_no_events_emitted": None, "monitor_failures": True, "monitor_all_events": False}
    )
    assert (
        list(why) == ["monitor_no_events_emitted"]
        and "a rollback cannot write it back" in why["monitor_no_events_emitted"]
    )
    # The monitor pair travels together: one that cannot be restored takes the other with it.
    assert set(TINES_ACTION.unrestorable({"monitor_failures": None, "monitor_all_events": True})) == {
        "monitor_failures",
        "monitor_all_events",
    }
