"""
Property-based tests of the update operators' input checks, against the sandbox (integration tier).

For each operator, hypothesis generates inputs that break one rule of the seed pages in one field
(among valid values of other fields), and asserts that each is refused with ``InvalidFieldError``
naming that field (or a path under it) and that **no request reached the server**: the sandbox's
request journal is the witness. It also generates inputs that follow every rule and asserts that a
dry run (reads only) never refuses them.

The sandbox fixture is shared by every example of a test on purpose: starting a server per example
would take minutes. Sharing is safe because each example clears the journal first, refused inputs
send nothing, and valid ones run dry, so no example can change what the next one sees. (The
examples run in an inner ``@given`` function, so hypothesis's function-scoped-fixture health check
does not apply, and the test can count that at least ``INVALID_EXAMPLES`` ran.)

Only public behaviour is asserted: operator arguments, ``execute``, the error's ``field`` and the
journal. The test ids and types come from the sandbox's own state.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.operators.fluents import (
    FluentsUpdateActionOperator,
    FluentsUpdateNumberOperator,
)
from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator

INVALID_EXAMPLES = 1000
VALID_EXAMPLES = 250

_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,  # nothing written into the checkout; a failure prints its reproduction blob
    "print_blob": True,
    # The composite strategies below build nested values on purpose.
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

FLUENTS_ACTION_TYPES = (
    "action_transfer_call",
    "action_end_conversation",
    "action_dtmf",
    "action_add_to_conference",
    "action_set_hold",
    "action_warm_transfer",
)
TYPES_WITH_PHONE = ("action_transfer_call", "action_add_to_conference")
TRIGGER_TYPES = ("action_trigger_function_call", "action_trigger_phrase_based")
LINK_TYPES = ("DEFAULT", "NO_MATCH", "FAILURE")
RUN_SAVING_TYPES = ("Agents::IMAPAgent", "Agents::WebhookAgent")
MAX_ID = 2**63 - 1


class RecordingTI:
    def __init__(self):
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value

    def xcom_pull(self, task_ids, key):
        return None


def names(field: str, expected: tuple[str, ...]) -> bool:
    """Whether an error's field is one of ``expected`` or a path under one (``options.a``, ``schedule[0]``)."""
    return any(field == e or field.startswith((f"{e}.", f"{e}[")) for e in expected)


def assert_refused_before_any_request(sandbox, operator_class, kwargs, expected):
    sandbox.state.clear_journal()
    with pytest.raises(InvalidFieldError) as err:
        operator_class(task_id="t", **kwargs).execute({"ti": RecordingTI()})
    assert names(err.value.field, expected), f"{err.value} does not name {expected}"
    assert sandbox.state.journal() == [], f"{kwargs} reached the server"


def assert_accepted(sandbox, operator_class, kwargs):
    sandbox.state.clear_journal()
    ti = RecordingTI()
    operator_class(task_id="t", dry_run=True, **kwargs).execute({"ti": ti})
    assert "planned_request" in ti.pushed
    assert all(entry["method"] == "GET" for entry in sandbox.state.journal())


def run_property(strategy, check, max_examples):
    ran = []

    @settings(max_examples=max_examples, **_SETTINGS)
    @given(strategy)
    def prop(case):
        ran.append(1)
        check(case)

    prop()
    assert len(ran) >= max_examples


# ---- values ------------------------------------------------------------------------------------------

KEYS = st.text(max_size=8)
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(KEYS, children, max_size=3),
    ),
    max_leaves=5,
)
JSON_OBJECTS = st.dictionaries(KEYS, JSON_VALUES, max_size=4)


class Opaque:
    pass


NOT_JSON = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 10**5000, b"x", bytearray(b"x"), 1j, Ellipsis]),
    st.builds(Opaque),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.decimals(allow_nan=True),
    st.sets(st.integers(), max_size=2),
    st.frozensets(st.text(max_size=2), max_size=2),
    # an object with a key that is not a string
    st.dictionaries(
        st.one_of(
            st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False), st.tuples(st.integers())
        ),
        JSON_LEAVES,
        min_size=1,
        max_size=2,
    ),
)


_DEPTHS = st.integers(0, 3)
_SMALL_LISTS = st.lists(JSON_LEAVES, max_size=2)
_SMALL_OBJECTS = st.dictionaries(KEYS, JSON_LEAVES, max_size=2)
_OUTER_OBJECTS = st.dictionaries(KEYS, JSON_VALUES, max_size=3)


@st.composite
def _poisoned_objects(draw):
    value = draw(NOT_JSON)
    for _ in range(draw(_DEPTHS)):
        if draw(st.booleans()):
            siblings = draw(_SMALL_LISTS)
            siblings.insert(draw(st.integers(0, len(siblings))), value)
            value = siblings
        else:
            container = draw(_SMALL_OBJECTS)
            container[draw(KEYS)] = value
            value = container
    outer = draw(_OUTER_OBJECTS)
    outer[draw(KEYS)] = value
    return outer


#: A JSON object holding, down to three levels deep, one value that cannot be JSON.
POISONED = _poisoned_objects()


def not_of(*kinds: type) -> st.SearchStrategy[Any]:
    """Values of none of ``kinds`` (a bool is not an int here, as in JSON)."""
    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=5),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(KEYS, st.integers(), max_size=2),
        st.tuples(st.integers()),
    )

    def outside(value: Any) -> bool:
        if isinstance(value, bool):
            return bool not in kinds
        return not isinstance(value, kinds)

    return values.filter(outside)


VALID_E164 = st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True)
_ARABIC_INDIC = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")
_FULLWIDTH = str.maketrans("0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19")


@st.composite
def _one_digit_replaced(draw):
    number = draw(VALID_E164)
    index = draw(st.integers(1, len(number) - 1))
    table = draw(st.sampled_from([_ARABIC_INDIC, _FULLWIDTH]))
    return number[:index] + number[index].translate(table) + number[index + 1 :]


BAD_E164 = st.one_of(
    VALID_E164.map(lambda n: n + "\n"),
    VALID_E164.map(lambda n: n + "\r\n"),
    VALID_E164.map(lambda n: "\n" + n),
    VALID_E164.map(lambda n: f" {n}"),
    VALID_E164.map(lambda n: f"{n} "),
    VALID_E164.map(lambda n: n[1:]),  # no +
    VALID_E164.map(lambda n: n.translate(_ARABIC_INDIC)),
    _one_digit_replaced(),
    VALID_E164.map(lambda n: f"{n[:3]}-{n[3:]}"),
    st.from_regex(r"\+0[0-9]{1,14}", fullmatch=True),
    st.from_regex(r"\+[1-9][0-9]{15,20}", fullmatch=True),
    st.sampled_from(["", "+", "+1", "++14155550101", "+1415555O101", "tel:+14155550101"]),
    not_of(str),
)

# Tines ids: positive integers below 2**63, or strings of ASCII digits for one.
VALID_TINES_IDS = st.one_of(
    st.integers(1, MAX_ID),
    st.integers(1, MAX_ID).map(str),
    st.sampled_from([1, MAX_ID, str(MAX_ID), "0090001"]),
)
BAD_TINES_IDS = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_ID + 1),
    st.just(10**5000),
    st.just("9" * 5000),
    st.integers(min_value=MAX_ID + 1).map(str),
    st.booleans(),
    st.floats(),
    st.none(),
    st.sampled_from(["", "0", "-4", "1/../2", " 12", "12 ", "12\n", "1e3", "0x1f", "\u0661\u0662", "\uff11"]),
    st.text(min_size=1, max_size=6).filter(lambda s: not (s.isascii() and s.isdigit())),
)
BAD_COUNTS = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_ID + 1),
    st.just(10**5000),
    st.booleans(),
    st.floats(),
    st.text(max_size=4),
    st.none(),
)


def case(kwargs: dict[str, Any], *expected: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    return kwargs, expected


# ---- FluentsUpdateActionOperator ---------------------------------------------------------------------


def _valid_config(action_type: str) -> st.SearchStrategy[dict[str, Any]]:
    extra = st.dictionaries(
        KEYS.filter(lambda k: k not in ("phone_number", "place_primary_on_hold")), JSON_VALUES, max_size=2
    )
    required = {"phone_number": VALID_E164} if action_type in TYPES_WITH_PHONE else {}
    return st.builds(
        lambda extra, required, hold: {**extra, **required, **hold},
        extra,
        st.fixed_dictionaries(required),
        st.one_of(st.just({}), st.builds(lambda b: {"place_primary_on_hold": b}, st.booleans())),
    )


#: A valid config per action type (the seed's rules: an E.164 phone_number for two types).
VALID_CONFIGS = {action_type: _valid_config(action_type) for action_type in FLUENTS_ACTION_TYPES}

VALID_TRIGGERS = st.one_of(
    st.just({"type": "action_trigger_function_call"}),
    st.builds(lambda c: {"type": "action_trigger_function_call", "config": c}, JSON_OBJECTS),
    st.builds(
        lambda phrases: {"type": "action_trigger_phrase_based", "config": {"phrase_triggers": phrases}},
        st.lists(
            st.one_of(
                st.builds(lambda p: {"phrase": p}, st.text(min_size=1, max_size=10)),
                st.builds(
                    lambda p, n: {"phrase": p, "conditions": ["phrase_condition_type_contains"] * n},
                    st.text(min_size=1, max_size=10),
                    st.integers(0, 2),
                ),
            ),
            min_size=1,
            max_size=3,
        ),
    ),
)

BAD_TRIGGERS = st.one_of(
    not_of(dict).map(lambda t: ("action_trigger", t)),
    st.builds(
        lambda t, c: ("action_trigger.type", {"type": t, "config": c}),
        st.one_of(
            st.text(max_size=30).filter(lambda t: t not in TRIGGER_TYPES),
            not_of(str),
            st.sampled_from(FLUENTS_ACTION_TYPES),
        ),
        JSON_OBJECTS,
    ),
    st.builds(lambda c: ("action_trigger", {"config": c}), JSON_OBJECTS),  # no type
    st.builds(
        lambda t, c: ("action_trigger.config", {"type": t, "config": c}),
        st.sampled_from(TRIGGER_TYPES),
        not_of(dict),
    ),
    st.builds(
        lambda p: (
            "action_trigger.config.phrase_triggers",
            {"type": "action_trigger_phrase_based", "config": {"phrase_triggers": p}},
        ),
        st.one_of(st.just([]), not_of(list)),
    ),
    st.just(("action_trigger.config.phrase_triggers", {"type": "action_trigger_phrase_based", "config": {}})),
    st.just(("action_trigger.config.phrase_triggers", {"type": "action_trigger_phrase_based"})),
    st.builds(
        lambda bad: (
            "action_trigger.config.phrase_triggers",
            {"type": "action_trigger_phrase_based", "config": {"phrase_triggers": [bad]}},
        ),
        st.one_of(
            not_of(dict),
            st.just({}),
            st.just({"phrase": ""}),
            st.builds(lambda p: {"phrase": p}, not_of(str)),
        ),
    ),
    st.builds(
        lambda c: (
            "action_trigger.config.phrase_triggers",
            {
                "type": "action_trigger_phrase_based",
                "config": {"phrase_triggers": [{"phrase": "transfer", "conditions": c}]},
            },
        ),
        st.one_of(
            not_of(list),
            st.lists(
                st.text(max_size=30).filter(lambda c: c != "phrase_condition_type_contains"),
                min_size=1,
                max_size=2,
            ),
        ),
    ),
    st.builds(
        lambda c: ("action_trigger", {"type": "action_trigger_function_call", "config": c}),
        POISONED,
    ),
    st.builds(
        lambda bad: (
            "action_trigger",
            {
                "type": "action_trigger_phrase_based",
                "config": {"phrase_triggers": [{"phrase": "x", "extra": bad}]},
            },
        ),
        NOT_JSON,
    ),
)


FLUENTS_ACTION_BAD = st.one_of(
    st.builds(
        lambda v: case({"action_id": v, "label": "x"}, "action_id"),
        st.one_of(not_of(str), st.sampled_from(["", " ", "\n"]), st.text(min_size=1).map(lambda s: f"a {s}")),
    ),
    st.builds(
        lambda v: case({"action_type": v}, "action_type"),
        st.one_of(
            st.text(max_size=30).filter(lambda t: t not in FLUENTS_ACTION_TYPES),
            st.sampled_from(
                [*TRIGGER_TYPES, "phrase_condition_type_contains", "ACTION_DTMF", " action_dtmf"]
            ),
            not_of(str),
        ),
    ),
    st.builds(lambda v: case({"label": v}, "label"), not_of(str)),
    st.builds(lambda v: case({"description": v}, "description"), not_of(str)),
    st.builds(lambda v: case({"config": v}, "config"), not_of(dict)),
    st.builds(lambda v: case({"config": v}, "config"), POISONED),
    st.builds(
        lambda v, t: case({"config": {"place_primary_on_hold": v}, **t}, "config"),
        not_of(bool),
        st.sampled_from([{}, {"action_type": "action_dtmf"}]),
    ),
    st.builds(
        lambda t, phone: case({"action_type": t, "config": phone}, "config"),
        st.sampled_from(TYPES_WITH_PHONE),
        st.one_of(st.just({}), st.builds(lambda p: {"phone_number": p}, BAD_E164)),
    ),
    BAD_TRIGGERS.map(lambda bad: case({"action_trigger": bad[1]}, bad[0])),
)
_FLUENTS_ACTION_UNITS = st.lists(
    st.sampled_from(["label", "description", "action_trigger", "typed_config"]), unique=True, max_size=2
)
_ACTION_TYPES = st.sampled_from(FLUENTS_ACTION_TYPES)
_LABELS = st.text(max_size=20)


@st.composite
def invalid_fluents_action_cases(draw, action_ids):
    kwargs, expected = draw(FLUENTS_ACTION_BAD)
    extras: dict[str, Any] = {}
    for unit in draw(_FLUENTS_ACTION_UNITS):
        if unit == "typed_config":
            if "action_type" in kwargs or "config" in kwargs:
                continue
            action_type = draw(_ACTION_TYPES)
            extras.update(action_type=action_type, config=draw(VALID_CONFIGS[action_type]))
        elif unit not in kwargs:
            extras[unit] = draw(VALID_TRIGGERS) if unit == "action_trigger" else draw(_LABELS)
    return {"action_id": draw(action_ids), **extras, **kwargs}, expected


@st.composite
def valid_fluents_action_kwargs(draw, actions, action_ids):
    action_id = draw(action_ids)
    kwargs: dict[str, Any] = {}
    if draw(st.booleans()):
        kwargs["action_type"] = draw(_ACTION_TYPES)
    if draw(st.booleans()):
        kwargs["config"] = draw(VALID_CONFIGS[kwargs.get("action_type", actions[action_id])])
    if draw(st.booleans()):
        kwargs["action_trigger"] = draw(VALID_TRIGGERS)
    for field in ("label", "description"):
        if draw(st.booleans()) or not kwargs:
            kwargs[field] = draw(_LABELS)
    return {"action_id": action_id, **kwargs}


def _fluents_actions(sandbox) -> dict[str, str]:
    return {k: v["type"] for k, v in sandbox.state.snapshot()["fluents"]["actions"].items()}


def test_fluents_action_operator_refuses_invalid_input_before_any_request(fluents_tines_sandbox):
    action_ids = st.sampled_from(sorted(_fluents_actions(fluents_tines_sandbox)))
    run_property(
        invalid_fluents_action_cases(action_ids),
        lambda c: assert_refused_before_any_request(fluents_tines_sandbox, FluentsUpdateActionOperator, *c),
        INVALID_EXAMPLES,
    )


def test_fluents_action_operator_accepts_valid_input(fluents_tines_sandbox):
    actions = _fluents_actions(fluents_tines_sandbox)
    run_property(
        valid_fluents_action_kwargs(actions, st.sampled_from(sorted(actions))),
        lambda kwargs: assert_accepted(fluents_tines_sandbox, FluentsUpdateActionOperator, kwargs),
        VALID_EXAMPLES,
    )


# ---- FluentsUpdateNumberOperator ---------------------------------------------------------------------

VALID_AGENTS = st.one_of(
    st.none(),
    st.text(min_size=1, max_size=12).filter(lambda s: s.strip()),
    st.builds(
        lambda extra, agent_id: {**extra, "id": agent_id},
        st.dictionaries(KEYS, JSON_VALUES, max_size=2),
        st.text(min_size=1, max_size=12),
    ),
)
BAD_AGENTS = st.one_of(
    not_of(str, dict).filter(lambda v: v is not None),
    st.sampled_from(["", " ", "\n\t"]),
    st.dictionaries(KEYS.filter(lambda k: k != "id"), JSON_LEAVES, max_size=2),
    st.builds(lambda v: {"id": v}, st.one_of(not_of(str), st.just(""))),
    POISONED.map(lambda poisoned: {"id": "agt_x", "profile": poisoned}),
)
NUMBER_FIELDS = {
    "label": st.text(max_size=20),
    "description": st.text(max_size=20),
    "outbound_only": st.booleans(),
    "inbound_agent": VALID_AGENTS,
    "example_context": JSON_OBJECTS,
}


NUMBER_BAD = st.one_of(
    st.builds(lambda v: case({"phone_number": v, "label": "x"}, "phone_number"), BAD_E164),
    st.builds(lambda v: case({"label": v}, "label"), not_of(str)),
    st.builds(lambda v: case({"description": v}, "description"), not_of(str)),
    st.builds(lambda v: case({"outbound_only": v}, "outbound_only"), not_of(bool)),
    st.builds(lambda v: case({"inbound_agent": v}, "inbound_agent"), BAD_AGENTS),
    st.builds(lambda v: case({"example_context": v}, "example_context"), not_of(dict)),
    st.builds(lambda v: case({"example_context": v}, "example_context"), POISONED),
)
_NUMBER_UNITS = st.lists(st.sampled_from(sorted(NUMBER_FIELDS)), unique=True, max_size=2)
_SOME_NUMBER_UNITS = st.lists(st.sampled_from(sorted(NUMBER_FIELDS)), unique=True, min_size=1)


@st.composite
def invalid_number_cases(draw, phones):
    kwargs, expected = draw(NUMBER_BAD)
    extras = {field: draw(NUMBER_FIELDS[field]) for field in draw(_NUMBER_UNITS) if field not in kwargs}
    return {"phone_number": draw(phones), **extras, **kwargs}, expected


@st.composite
def valid_number_kwargs(draw, phones):
    fields = draw(_SOME_NUMBER_UNITS)
    return {"phone_number": draw(phones), **{f: draw(NUMBER_FIELDS[f]) for f in fields}}


def test_fluents_number_operator_refuses_invalid_input_before_any_request(fluents_tines_sandbox):
    phones = st.sampled_from(sorted(fluents_tines_sandbox.state.snapshot()["fluents"]["numbers"]))
    run_property(
        invalid_number_cases(phones),
        lambda c: assert_refused_before_any_request(fluents_tines_sandbox, FluentsUpdateNumberOperator, *c),
        INVALID_EXAMPLES,
    )


def test_fluents_number_operator_accepts_valid_input(fluents_tines_sandbox):
    phones = st.sampled_from(sorted(fluents_tines_sandbox.state.snapshot()["fluents"]["numbers"]))
    run_property(
        valid_number_kwargs(phones),
        lambda kwargs: assert_accepted(fluents_tines_sandbox, FluentsUpdateNumberOperator, kwargs),
        VALID_EXAMPLES,
    )


# ---- TinesUpdateActionOperator -----------------------------------------------------------------------

COORDINATES = st.integers(-MAX_ID, MAX_ID)
VALID_SCHEDULES = st.one_of(
    st.none(),
    JSON_OBJECTS,
    st.lists(
        st.one_of(
            st.builds(
                lambda cron, tz: {"cron": cron, "timezone": tz},
                st.sampled_from(["*/5 * * * *", "0 * * * *"]),
                st.sampled_from(["Europe/Dublin", "UTC"]),
            ),
            JSON_OBJECTS,
        ),
        max_size=3,
    ),
)


def _links(key: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(
        st.one_of(
            st.builds(lambda i: {key: i}, VALID_TINES_IDS),
            st.builds(lambda i, t: {key: i, "type": t}, VALID_TINES_IDS, st.sampled_from(LINK_TYPES)),
        ),
        max_size=3,
    )


# Valid values per unit of fields that go together (a unit is never mixed with its exclusive twin).
TINES_UNITS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "name": st.builds(lambda v: {"name": v}, st.text(max_size=20)),
    "description": st.builds(lambda v: {"description": v}, st.one_of(st.none(), st.text(max_size=20))),
    "options": st.builds(lambda v: {"options": v}, JSON_OBJECTS),
    "position": st.builds(lambda x, y: {"position": {"x": x, "y": y}}, COORDINATES, COORDINATES),
    "sources": st.one_of(
        st.builds(lambda v: {"source_ids": v}, st.lists(VALID_TINES_IDS, max_size=3)),
        st.builds(lambda v: {"links_to_sources": v}, _links("source_id")),
    ),
    "receivers": st.one_of(
        st.builds(lambda v: {"receiver_ids": v}, st.lists(VALID_TINES_IDS, max_size=3)),
        st.builds(lambda v: {"links_to_receivers": v}, _links("receiver_id")),
    ),
    "schedule": st.builds(lambda v: {"schedule": v}, VALID_SCHEDULES),
    "disabled": st.builds(lambda v: {"disabled": v}, st.booleans()),
    "monitor": st.one_of(
        st.builds(
            lambda a, b: {"monitor_failures": a, "monitor_all_events": b}, st.booleans(), st.booleans()
        ),
        st.builds(
            lambda a, b, n: {"monitor_failures": a, "monitor_all_events": b, "monitor_no_events_emitted": n},
            st.booleans(),
            st.booleans(),
            st.integers(1, MAX_ID),
        ),
    ),
    "num_runs_to_save": st.builds(lambda v: {"num_runs_to_save": v}, st.integers(1, MAX_ID)),
}
_UNIT_FIELDS = {
    "sources": ("source_ids", "links_to_sources"),
    "receivers": ("receiver_ids", "links_to_receivers"),
    "monitor": ("monitor_failures", "monitor_all_events", "monitor_no_events_emitted"),
}


def _bad_links(field: str, key: str) -> st.SearchStrategy[tuple[dict[str, Any], tuple[str, ...]]]:
    bad_link = st.one_of(
        not_of(dict),
        st.just({}),
        st.builds(lambda i: {key: i}, BAD_TINES_IDS),
        st.builds(
            lambda i, t: {key: i, "type": t},
            VALID_TINES_IDS,
            st.one_of(st.text(max_size=10).filter(lambda t: t not in LINK_TYPES), not_of(str)),
        ),
        st.builds(
            lambda i, k, v: {key: i, k: v},
            VALID_TINES_IDS,
            KEYS.filter(lambda k: k not in (key, "type")),
            JSON_LEAVES,
        ),
        st.builds(lambda i: {"id": i}, VALID_TINES_IDS),
    )
    return st.one_of(
        st.builds(lambda v: case({field: v}, field), not_of(list)),
        st.builds(
            lambda good, bad, at: case({field: [*good[:at], bad, *good[at:]]}, field),
            _links(key),
            bad_link,
            st.integers(0, 3),
        ),
    )


def _bad_ids(field: str) -> st.SearchStrategy[tuple[dict[str, Any], tuple[str, ...]]]:
    return st.one_of(
        st.builds(lambda v: case({field: v}, field), not_of(list)),
        st.builds(
            lambda good, bad, at: case({field: [*good[:at], bad, *good[at:]]}, field),
            st.lists(VALID_TINES_IDS, max_size=2),
            BAD_TINES_IDS,
            st.integers(0, 2),
        ),
    )


BAD_POSITIONS = st.one_of(
    not_of(dict),
    st.builds(lambda x: {"x": x}, COORDINATES),
    st.builds(lambda y: {"y": y}, COORDINATES),
    st.builds(
        lambda x, y, k: {"x": x, "y": y, k: 0},
        COORDINATES,
        COORDINATES,
        KEYS.filter(lambda k: k not in ("x", "y")),
    ),
    st.builds(lambda x, y: {"x": x, "y": y}, not_of(int), COORDINATES),
    st.builds(lambda x, y: {"x": x, "y": y}, COORDINATES, not_of(int)),
    st.builds(
        lambda x: {"x": x, "y": 0},
        st.one_of(st.integers(min_value=MAX_ID + 1), st.integers(max_value=-MAX_ID - 1)),
    ),
)

BAD_SCHEDULES = st.one_of(
    st.builds(
        lambda v: case({"schedule": v}, "schedule"), not_of(list, dict).filter(lambda v: v is not None)
    ),
    st.builds(
        lambda good, bad, at: case({"schedule": [*good[:at], bad, *good[at:]]}, "schedule"),
        st.lists(JSON_OBJECTS, max_size=2),
        st.one_of(not_of(dict), st.just("*/5 * * * *")),
        st.integers(0, 2),
    ),
    st.builds(lambda v: case({"schedule": [v]}, "schedule"), POISONED),
    st.builds(lambda v: case({"schedule": v}, "schedule"), POISONED),
)

BAD_MONITORS = st.one_of(
    st.builds(lambda v: case({"monitor_failures": v}, "monitor_failures"), st.booleans()),
    st.builds(lambda v: case({"monitor_all_events": v}, "monitor_all_events"), st.booleans()),
    st.builds(
        lambda n: case({"monitor_no_events_emitted": n}, "monitor_no_events_emitted"), st.integers(1, 10**6)
    ),
    st.builds(
        lambda field, b, n: case(
            {field: b, "monitor_no_events_emitted": n}, field, "monitor_no_events_emitted"
        ),
        st.sampled_from(["monitor_failures", "monitor_all_events"]),
        st.booleans(),
        st.integers(1, 10**6),
    ),
    st.builds(
        lambda v, b: case({"monitor_failures": v, "monitor_all_events": b}, "monitor_failures"),
        not_of(bool),
        st.booleans(),
    ),
    st.builds(
        lambda b, v: case({"monitor_failures": b, "monitor_all_events": v}, "monitor_all_events"),
        st.booleans(),
        not_of(bool),
    ),
    st.builds(
        lambda n: case(
            {"monitor_failures": True, "monitor_all_events": False, "monitor_no_events_emitted": n},
            "monitor_no_events_emitted",
        ),
        BAD_COUNTS,
    ),
)


TINES_BAD = st.one_of(
    st.builds(lambda v: case({"action_id": v, "name": "x"}, "action_id"), BAD_TINES_IDS),
    st.builds(lambda v: case({"name": v}, "name"), not_of(str)),
    st.builds(lambda v: case({"description": v}, "description"), not_of(str).filter(lambda v: v is not None)),
    st.builds(lambda v: case({"options": v}, "options"), not_of(dict)),
    st.builds(lambda v: case({"options": v}, "options"), POISONED),
    st.builds(lambda v: case({"position": v}, "position"), BAD_POSITIONS),
    _bad_ids("source_ids"),
    _bad_ids("receiver_ids"),
    _bad_links("links_to_sources", "source_id"),
    _bad_links("links_to_receivers", "receiver_id"),
    st.builds(
        lambda ids, links: case({"source_ids": ids, "links_to_sources": links}, "links_to_sources"),
        st.lists(VALID_TINES_IDS, max_size=2),
        _links("source_id"),
    ),
    st.builds(
        lambda ids, links: case({"receiver_ids": ids, "links_to_receivers": links}, "links_to_receivers"),
        st.lists(VALID_TINES_IDS, max_size=2),
        _links("receiver_id"),
    ),
    BAD_SCHEDULES,
    st.builds(lambda v: case({"disabled": v}, "disabled"), not_of(bool)),
    BAD_MONITORS,
    st.builds(lambda v: case({"num_runs_to_save": v}, "num_runs_to_save"), BAD_COUNTS),
)
_TINES_UNIT_LISTS = st.lists(st.sampled_from(sorted(TINES_UNITS)), unique=True, max_size=2)
_SOME_TINES_UNITS = st.lists(st.sampled_from(sorted(TINES_UNITS)), unique=True, min_size=1)


@st.composite
def invalid_tines_cases(draw, action_ids):
    kwargs, expected = draw(TINES_BAD)
    extras: dict[str, Any] = {}
    for unit in draw(_TINES_UNIT_LISTS):
        if not set(_UNIT_FIELDS.get(unit, (unit,))) & set(kwargs):
            extras.update(draw(TINES_UNITS[unit]))
    return {"action_id": draw(action_ids), **extras, **kwargs}, expected


@st.composite
def valid_tines_kwargs(draw, any_ids, run_saving_ids):
    units = draw(_SOME_TINES_UNITS)
    action_id = draw(run_saving_ids if "num_runs_to_save" in units else any_ids)
    kwargs: dict[str, Any] = {"action_id": draw(st.sampled_from([action_id, str(action_id)]))}
    for unit in units:
        kwargs.update(draw(TINES_UNITS[unit]))
    return kwargs


def test_tines_action_operator_refuses_invalid_input_before_any_request(fluents_tines_sandbox):
    action_ids = st.sampled_from(sorted(fluents_tines_sandbox.state.snapshot()["tines"]["actions"]))
    run_property(
        invalid_tines_cases(action_ids),
        lambda c: assert_refused_before_any_request(fluents_tines_sandbox, TinesUpdateActionOperator, *c),
        INVALID_EXAMPLES,
    )


def test_tines_action_operator_accepts_valid_input(fluents_tines_sandbox, monkeypatch):
    # Hundreds of requests in one test: the sandbox does not rate-limit by default, and Tines' default
    # request budget (100 a minute) would pace them for minutes.
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_TINES_DEFAULT", json.dumps({**env, "extra": {"requests_per_minute": 100_000}})
    )
    actions = {k: v["type"] for k, v in fluents_tines_sandbox.state.snapshot()["tines"]["actions"].items()}
    run_saving = sorted(i for i, t in actions.items() if t in RUN_SAVING_TYPES)
    run_property(
        valid_tines_kwargs(st.sampled_from(sorted(actions)), st.sampled_from(run_saving)),
        lambda kwargs: assert_accepted(fluents_tines_sandbox, TinesUpdateActionOperator, kwargs),
        VALID_EXAMPLES,
    )


# ---- the strategies themselves ---------------------------------------------------------------------------


def test_the_poisoned_values_really_cannot_become_json():
    """The oracle of the invalid cases: json either fails on them or silently changes a key."""

    @settings(max_examples=200, **_SETTINGS)
    @given(POISONED)
    def prop(value):
        if all(isinstance(key, str) for key in _all_keys(value)):
            with pytest.raises((ValueError, TypeError)):
                json.dumps(value, allow_nan=False)

    prop()


def _all_keys(value: Any):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _all_keys(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _all_keys(item)
