"""
The two shapes of a Fluents number (issue #11, item 10b), and the provider against both.

Fluents kept the paths of Vocode's hosted API. Vocode's official SDK (PyPI ``vocode-api`` 0.0.48,
generated from that API's definition in 2024) is the best public evidence of the shapes Fluents
types as a bare ``object``: ``GET /v1/numbers`` answers a ``PhoneNumber`` whose ``inbound_agent``
is a full ``Agent`` (required ``prompt``, ``actions``, ``voice``) and whose
``telephony_account_connection`` is an object; ``GET /v1/numbers/list`` answers a
``PhoneNumberPage`` of ``NormalizedPhoneNumber`` items (ids). Fluents' own page for
``POST /v1/numbers/update`` answers a ``NormalizedNumberDto`` (the agent's id). The sandbox's
answers are validated here against those models (a test-only dependency: ``vocode-api==0.0.48``).

Then, with ``GET /v1/numbers`` answering either shape (``fluents_number_shape`` knob), the hook,
the number sensor (poke mode, the deferrable first check and the trigger) and the update operator
(read-modify-write, previous values, rollback) must behave the same.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
import warnings
from typing import Any

import pytest
import requests
from pydantic import TypeAdapter, ValidationError

from airflow_provider_fluents_tines.hooks.fluents import FluentsHook
from airflow_provider_fluents_tines.objects.fluents import FLUENTS_NUMBER
from airflow_provider_fluents_tines.operators.base import PREVIOUS_VALUES_XCOM_KEY, WRITTEN_VALUES_XCOM_KEY
from airflow_provider_fluents_tines.operators.fluents import FluentsUpdateNumberOperator
from airflow_provider_fluents_tines.sandbox import DEFAULT_FLUENTS_TOKEN, default_seed
from airflow_provider_fluents_tines.sensors.fluents import FluentsNumberSensor
from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger

NUMBER = "+14155550101"
CONNECTION = "7f3c2a1e-9b4d-4e6f-8a2b-5c1d0e9f8a7b"
SHAPES = ("embedded", "normalized")
SDK_VERSION = "0.0.48"


def _sdk() -> Any:
    """Vocode's SDK types, or a skip that says which test dependency to install."""
    reason = f"the test dependency vocode-api=={SDK_VERSION} is not installed"
    with warnings.catch_warnings():
        # Its Fern models carry pydantic v1 config keys, which pydantic v2 warns about.
        warnings.simplefilter("ignore", UserWarning)
        types = pytest.importorskip("vocode.types", reason=reason)
    installed = importlib.metadata.version("vocode-api")
    if installed != SDK_VERSION:
        pytest.skip(f"vocode-api {installed} is installed; these models are checked against {SDK_VERSION}")
    return types


def _validate(model: Any, value: Any) -> Any:
    return TypeAdapter(model).validate_python(value)


@pytest.fixture
def fluents(fluents_tines_sandbox):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {DEFAULT_FLUENTS_TOKEN}"

    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = session.request(method, fluents_tines_sandbox.url + path, timeout=10, **kwargs)
        assert response.status_code in (200, 201), response.text
        return response.json()

    return call


class RecordingTI:
    def __init__(self, pulled: Any = None, written: Any = None) -> None:
        self.pushed: dict[str, Any] = {}
        self.pulled = {PREVIOUS_VALUES_XCOM_KEY: pulled, WRITTEN_VALUES_XCOM_KEY: written}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.pulled.get(key)


def run(operator: Any, ti: RecordingTI | None = None) -> tuple[Any, RecordingTI]:
    ti = ti or RecordingTI()
    return operator.execute({"ti": ti}), ti


def first_event(trigger: ObjectStateTrigger, deadline: float = 20.0) -> dict[str, Any]:
    async def first() -> Any:
        return await asyncio.wait_for(trigger.run().__anext__(), timeout=deadline)

    return asyncio.run(first()).payload


# ---- the sandbox's answers against the SDK's models ---------------------------------------------------


def test_get_number_is_the_sdk_phone_number_with_a_full_agent_and_a_connection_object(fluents):
    types = _sdk()
    seeded = default_seed()["fluents"]["numbers"]
    for seeded_number in seeded:
        body = fluents("GET", "/v1/numbers", params={"phone_number": seeded_number["number"]})
        number = _validate(types.PhoneNumber, body)
        assert isinstance(number.telephony_account_connection, types.TwilioAccountConnection)
        assert number.telephony_account_connection.id == seeded_number["telephony_account_connection"]
        if seeded_number["inbound_agent"] is None:
            assert number.inbound_agent is None
            continue
        agent = number.inbound_agent
        assert isinstance(agent, types.Agent) and agent.id == seeded_number["inbound_agent"]
        assert isinstance(agent.prompt, types.Prompt) and agent.prompt.content
        assert isinstance(agent.voice, types.AzureVoice | types.ElevenLabsVoice)
        assert agent.actions, "a seeded agent carries its actions"
        # The untagged unions must have picked the member of the action's own type.
        for action in agent.actions:
            assert (
                action.type
                == {
                    types.TransferCallAction: "action_transfer_call",
                    types.EndConversationAction: "action_end_conversation",
                    types.DtmfAction: "action_dtmf",
                    types.AddToConferenceAction: "action_add_to_conference",
                    types.SetHoldAction: "action_set_hold",
                }[type(action)]
            )


def test_update_answer_is_the_normalized_number(fluents):
    types = _sdk()
    current = fluents("GET", "/v1/numbers", params={"phone_number": NUMBER})
    body = fluents(
        "POST",
        "/v1/numbers/update",
        params={"phone_number": NUMBER},
        json={"inbound_agent": "agt_front_desk_v2", "example_context": current["example_context"]},
    )
    number = _validate(types.NormalizedPhoneNumber, body)
    assert number.inbound_agent == "agt_front_desk_v2"
    assert number.telephony_account_connection == CONNECTION  # an id, as the seed page's example
    with pytest.raises(ValidationError):  # and not the other shape
        _validate(types.PhoneNumber, body)


def test_list_items_are_normalized_numbers(fluents):
    types = _sdk()
    page = _validate(types.PhoneNumberPage, fluents("GET", "/v1/numbers/list", params={"size": 100}))
    assert page.total == len(page.items) == 5
    assert {n.inbound_agent for n in page.items} == {"agt_front_desk_v1", "agt_after_hours", None}
    assert {n.telephony_account_connection for n in page.items} == {CONNECTION}


def test_actions_are_sdk_actions(fluents):
    types = _sdk()
    page = _validate(types.ActionPage, fluents("GET", "/v1/actions/list", params={"size": 100}))
    assert page.total == 5
    for action in page.items:
        single = _validate(types.ActionResponseModel, fluents("GET", "/v1/actions", params={"id": action.id}))
        assert type(single) is type(action) and single.type == action.type


def test_the_seed_pages_example_values_stay_valid(fluents_tines_sandbox, fluents):
    """The update page's NormalizedNumberDto example, seeded, is answered with the same values."""
    types = _sdk()
    example = {
        "id": "550e8400-e29b-41d4-a716-446655440000",
        "user_id": "550e8400-e29b-41d4-a716-446655440000",
        "number": "+1234567890",
        "active": True,
        "label": "My Phone Number",
        "inbound_agent_name": "Agent Name",
        "outbound_only": False,
        "example_context": {},
        "telephony_provider": "twilio",
        "description": "Business line for customer service",
        "inbound_agent": "agent_123",
        "telephony_account_connection": "550e8400-e29b-41d4-a716-446655440000",
    }
    _validate(types.NormalizedPhoneNumber, example)
    seed = default_seed()
    seed["fluents"]["agents"].append({"id": "agent_123", "name": "Agent Name"})
    connection = dict(seed["fluents"]["account_connections"][0], id=example["telephony_account_connection"])
    seed["fluents"]["account_connections"].append(connection)
    seed["fluents"]["numbers"].append(example)
    fluents_tines_sandbox.state.reset(seed)

    answered = fluents(
        "POST", "/v1/numbers/update", params={"phone_number": "+1234567890"}, json={"example_context": {}}
    )
    assert answered == example
    embedded = _validate(
        types.PhoneNumber, fluents("GET", "/v1/numbers", params={"phone_number": "+1234567890"})
    )
    # A seeded agent without the SDK's required fields is completed by the sandbox.
    assert embedded.inbound_agent is not None and embedded.inbound_agent.id == "agent_123"


def test_normalized_shape_knob_in_process_and_over_http(fluents_tines_sandbox, fluents):
    types = _sdk()
    state = fluents_tines_sandbox.state
    assert state.configure()["fluents_number_shape"] == "embedded"
    state.configure(fluents_number_shape="normalized")
    number = _validate(
        types.NormalizedPhoneNumber, fluents("GET", "/v1/numbers", params={"phone_number": NUMBER})
    )
    assert (number.inbound_agent, number.telephony_account_connection) == ("agt_front_desk_v1", CONNECTION)

    admin = fluents_tines_sandbox.url + "/_sandbox/config"
    answer = requests.put(admin, json={"fluents_number_shape": "embedded"}, timeout=5)
    assert answer.status_code == 200 and answer.json()["fluents_number_shape"] == "embedded"
    assert requests.get(admin, timeout=5).json()["fluents_number_shape"] == "embedded"
    assert fluents("GET", "/v1/numbers", params={"phone_number": NUMBER})["inbound_agent"]["id"] == (
        "agt_front_desk_v1"
    )


def test_the_snapshot_keeps_ids(fluents_tines_sandbox, fluents):
    number = fluents_tines_sandbox.state.snapshot()["fluents"]["numbers"][NUMBER]
    assert number["inbound_agent"] == "agt_front_desk_v1"
    assert number["telephony_account_connection"] == CONNECTION


def test_the_embedded_agent_shows_its_actions_as_they_are_now(fluents):
    transfer = "3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11"
    fluents("POST", "/v1/actions/update", params={"id": transfer}, json={"label": "Billing (new)"})
    agent = fluents("GET", "/v1/numbers", params={"phone_number": NUMBER})["inbound_agent"]
    assert {a["id"]: a["label"] for a in agent["actions"]}[transfer] == "Billing (new)"


# ---- the provider against both shapes ---------------------------------------------------------------


@pytest.fixture(params=SHAPES)
def shaped(request, fluents_tines_sandbox):
    """The sandbox with ``GET /v1/numbers`` answering one shape, checked."""
    fluents_tines_sandbox.state.configure(fluents_number_shape=request.param)
    number = FluentsHook().get_number(NUMBER)
    embedded = request.param == "embedded"
    assert isinstance(number["inbound_agent"], dict) is embedded
    assert isinstance(number["telephony_account_connection"], dict) is embedded
    return fluents_tines_sandbox


def test_hook_get_number_in_both_shapes(shaped):
    hook = FluentsHook()
    number = hook.get_number(NUMBER)
    assert number["number"] == NUMBER and number["example_context"] == {
        "region": "us-west",
        "queue": "support",
    }
    observed = FLUENTS_NUMBER.normalize(number)
    assert (observed["inbound_agent"], observed["telephony_account_connection"]) == (
        "agt_front_desk_v1",
        CONNECTION,
    )


def test_number_sensor_and_trigger_match_in_both_shapes(shaped):
    expected = {"inbound_agent": "agt_front_desk_v1", "telephony_account_connection": CONNECTION}
    sensor = FluentsNumberSensor(
        task_id="s", phone_number=NUMBER, expected=expected, poke_interval=0.1, timeout=5
    )
    assert sensor.poke({}) and sensor.execute({})["number"] == NUMBER
    other = FluentsNumberSensor(
        task_id="o", phone_number=NUMBER, expected={"inbound_agent": "agt_front_desk_v2"}
    )
    assert not other.poke({})
    # Deferrable: the first check on the worker matches, so nothing is deferred.
    deferrable = FluentsNumberSensor(
        task_id="d", phone_number=NUMBER, expected=expected, deferrable=True, timeout=5
    )
    assert deferrable.execute({})["number"] == NUMBER
    event = first_event(
        ObjectStateTrigger(
            conn_id="fluents_default",
            object_kind="fluents.number",
            object_id=NUMBER,
            expected=expected,
            end_time=time.time() + 5,
            poke_interval=0.1,
        )
    )
    assert event["status"] == "success" and event["object"]["number"] == NUMBER


def test_trigger_waits_for_a_change_in_both_shapes(shaped):
    shaped.state.configure(visibility_lag=0.5)
    FluentsHook().update_number(NUMBER, inbound_agent="agt_front_desk_v2", example_context={"queue": "x"})
    event = first_event(
        ObjectStateTrigger(
            conn_id="fluents_default",
            object_kind="fluents.number",
            object_id=NUMBER,
            expected={"inbound_agent": "agt_front_desk_v2"},
            end_time=time.time() + 10,
            poke_interval=0.1,
        )
    )
    assert event["status"] == "success"
    assert len(shaped.state.journal(method="GET", path="/v1/numbers")) >= 2


def test_update_operator_read_modify_write_previous_values_and_rollback_in_both_shapes(shaped):
    state = shaped.state
    before = state.snapshot()["fluents"]["numbers"][NUMBER]
    result, forward = run(
        FluentsUpdateNumberOperator(
            task_id="fwd", phone_number=NUMBER, inbound_agent="agt_front_desk_v2", label="West"
        )
    )
    # read-modify-write: the number's example_context travels with the change
    ((write,),) = [[e["body"] for e in state.journal(method="POST")]]
    assert write == {
        "inbound_agent": "agt_front_desk_v2",
        "label": "West",
        "example_context": before["example_context"],
    }
    assert result["inbound_agent"] == "agt_front_desk_v2"
    # the previous agent is recorded by id, never as the embedded object
    assert forward.pushed[PREVIOUS_VALUES_XCOM_KEY] == {
        "object_id": NUMBER,
        "fields": {"inbound_agent": "agt_front_desk_v1", "label": "Support line (West)"},
    }
    # an unchanged agent is not written again, whichever shape the read had
    state.clear_journal()
    run(FluentsUpdateNumberOperator(task_id="same", phone_number=NUMBER, inbound_agent="agt_front_desk_v2"))
    assert state.journal(method="POST") == []

    run(
        FluentsUpdateNumberOperator(task_id="rb", phone_number=NUMBER, restore_from="fwd"),
        RecordingTI(forward.pushed[PREVIOUS_VALUES_XCOM_KEY], forward.pushed[WRITTEN_VALUES_XCOM_KEY]),
    )
    assert state.snapshot()["fluents"]["numbers"][NUMBER] == before | {"inbound_agent_name": "Front Desk v1"}


def test_detach_and_rollback_in_both_shapes(shaped):
    state = shaped.state
    _, forward = run(FluentsUpdateNumberOperator(task_id="fwd", phone_number=NUMBER, inbound_agent=None))
    assert forward.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"] == {"inbound_agent": "agt_front_desk_v1"}
    assert state.snapshot()["fluents"]["numbers"][NUMBER]["inbound_agent"] is None
    run(
        FluentsUpdateNumberOperator(task_id="rb", phone_number=NUMBER, restore_from="fwd"),
        RecordingTI(forward.pushed[PREVIOUS_VALUES_XCOM_KEY], forward.pushed[WRITTEN_VALUES_XCOM_KEY]),
    )
    assert state.snapshot()["fluents"]["numbers"][NUMBER]["inbound_agent"] == "agt_front_desk_v1"


def test_update_operator_return_value_has_one_shape_whether_it_wrote_or_not(fluents_tines_sandbox):
    wrote, _ = run(
        FluentsUpdateNumberOperator(task_id="w", phone_number=NUMBER, inbound_agent="agt_front_desk_v2")
    )
    unchanged, _ = run(
        FluentsUpdateNumberOperator(task_id="u", phone_number=NUMBER, inbound_agent="agt_front_desk_v2")
    )
    assert type(wrote["inbound_agent"]) is type(unchanged["inbound_agent"])
