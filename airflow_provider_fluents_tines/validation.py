"""
The request rules of the three update endpoints and of their identifiers, each written once.

Operators and hooks call these before sending anything; the sandbox calls the same functions to
answer 400 like the real servers. Each ``*_problems`` function returns every broken rule, so one
error can name them all. Nothing here imports Airflow at module level: the sandbox starts without it.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.exceptions import InvalidFieldError

#: ``+``, a non-zero digit, then up to 14 ASCII digits. Always applied with ``fullmatch``: ``$`` in
#: ``match`` also matches before a final newline.
E164 = re.compile(r"\+[1-9][0-9]{1,14}")

# The Fluents update-action page publishes nine `type` values; three of them are trigger and
# condition types that belong inside `action_trigger`, not action types.
FLUENTS_ACTION_TYPES = (
    "action_transfer_call",
    "action_end_conversation",
    "action_dtmf",
    "action_add_to_conference",
    "action_set_hold",
    "action_warm_transfer",
)
FLUENTS_TRIGGER_TYPES = ("action_trigger_function_call", "action_trigger_phrase_based")
FLUENTS_PHRASE_CONDITIONS = ("phrase_condition_type_contains",)
FLUENTS_PUBLISHED_ACTION_TYPES = FLUENTS_ACTION_TYPES + FLUENTS_TRIGGER_TYPES + FLUENTS_PHRASE_CONDITIONS
FLUENTS_TYPES_WITH_PHONE_NUMBER = ("action_transfer_call", "action_add_to_conference")

TINES_LINK_TYPES = ("DEFAULT", "NO_MATCH", "FAILURE")
TINES_MONITOR_PAIR = ("monitor_failures", "monitor_all_events")
#: The action types that have ``num_runs_to_save`` (the update page: "Only present for Receive Email
#: and Webhook agents"; Receive Email is ``Agents::IMAPAgent``).
TINES_RUN_SAVING_TYPES = ("Agents::IMAPAgent", "Agents::WebhookAgent")
#: The largest Tines id, count or coordinate accepted. The API documents them only as integers;
#: Tines is a Rails application whose ids are PostgreSQL ``bigint`` keys (an inference), so a signed
#: 64-bit integer is the widest value it can hold. The bound also keeps a digit string short enough
#: for ``int()``, which refuses strings of more than 4,300 digits with a plain ``ValueError``.
TINES_MAX_INT = 2**63 - 1
#: How deep a free-form field (``options``, ``config``...) may nest. The provider's diff and Python's
#: JSON encoder recurse once per level, and no block of either API comes near this depth.
JSON_MAX_DEPTH = 100
# At most this many JSON problems are listed per field: one error should stay readable.
_JSON_PROBLEMS_LISTED = 10

_TINES_LINK_FIELDS = (
    ("source_ids", "links_to_sources", "source_id"),
    ("receiver_ids", "links_to_receivers", "receiver_id"),
)


class Problem(NamedTuple):
    """One broken rule: the field at fault and the rule, in words."""

    field: str
    rule: str


def invalid(field: str, rule: str) -> InvalidFieldError:
    """The provider's error for a broken rule (imported late: Airflow is slow to import)."""
    from airflow_provider_fluents_tines.exceptions import InvalidFieldError

    return InvalidFieldError(field, rule)


def raise_for(problems: list[Problem], field_names: Mapping[str, str] | None = None) -> None:
    """
    Raise :class:`InvalidFieldError` naming every problem, if there is any.

    :param field_names: renames API fields to the task argument a user wrote (``type`` -> ``action_type``).
    """
    if not problems:
        return
    names = field_names or {}
    first, *rest = problems
    rule = first.rule
    if rest:
        rule += "; also " + "; ".join(f"{names.get(p.field, p.field)}: {p.rule}" for p in rest)
    raise invalid(names.get(first.field, first.field), rule)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 40


def shown(value: Any) -> str:
    """A short repr of a user's value for an error message; never raises (huge ints, cycles...)."""
    try:
        return _REPR.repr(value)
    except Exception:
        if isinstance(value, int):
            return f"<an integer of {value.bit_length()} bits>"
        return f"<a {type(value).__name__}>"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_int(value: Any) -> bool:
    return _is_int(value) and 0 < value <= TINES_MAX_INT


def _tines_id(value: Any) -> int | None:
    """The Tines id ``value`` stands for (an int, or a string of ASCII digits), or None if it is none."""
    if isinstance(value, str):
        digits = value.lstrip("0")
        if not (value.isascii() and value.isdigit()) or len(digits) > len(str(TINES_MAX_INT)):
            return None
        value = int(digits or "0")
    return value if _is_positive_int(value) else None


def phone_number(value: Any, field: str = "phone_number") -> str:
    """Return ``value`` if it is an E.164 phone number (``+`` then up to 15 digits), else raise."""
    problems = _phone_problems(value, field)
    if problems:
        raise invalid(field, problems[0].rule)
    return value


def fluents_action_id(value: Any, field: str = "action_id") -> str:
    """Return a Fluents action id (a non-empty string without whitespace), else raise."""
    if not isinstance(value, str) or not value.strip() or any(ch.isspace() for ch in value):
        raise invalid(field, f"must be a non-empty action id string, got {shown(value)}")
    return value


def tines_action_id(value: Any, field: str = "action_id") -> int:
    """
    Return a Tines action id as an int; a string of digits is accepted (rendered templates are
    strings, and the update page's own example quotes ids). At most ``2**63 - 1``.
    """
    number = _tines_id(value)
    if number is None:
        raise invalid(field, f"must be a positive integer below 2**63, got {shown(value)}")
    return number


def tines_ids_as_ints(fields: Mapping[str, Any]) -> dict[str, Any]:
    """
    A copy of a Tines update body with the action ids given as digit strings (in ``source_ids``,
    ``receiver_ids`` and the links' ``source_id``/``receiver_id``) made integers; anything that is not a
    valid id is left as it is, for the rules to name.
    """
    converted = dict(fields)
    for ids_field, links_field, key in _TINES_LINK_FIELDS:
        if isinstance(converted.get(ids_field), list):
            converted[ids_field] = [_id_as_int(item) for item in converted[ids_field]]
        if isinstance(converted.get(links_field), list):
            converted[links_field] = [
                {**link, key: _id_as_int(link[key])} if isinstance(link, dict) and key in link else link
                for link in converted[links_field]
            ]
    return converted


def _id_as_int(value: Any) -> Any:
    number = _tines_id(value) if isinstance(value, str) else None
    return value if number is None else number


def json_problems(value: Any, path: str) -> list[Problem]:
    """
    Where ``value`` cannot be sent as JSON, each place named by its path (``options.threshold``,
    ``schedule[0].cron``): NaN and infinities, keys that are not strings, integers too long to write,
    reference cycles, nesting deeper than :data:`JSON_MAX_DEPTH`, and any value that is not a dict, list,
    tuple, string, number, boolean or None (datetimes, sets, bytes...).
    """
    found: list[Problem] = []
    _collect_json_problems(value, path, path, 1, set(), found)
    if len(found) > _JSON_PROBLEMS_LISTED:
        more = Problem(
            path, f"holds more values that are not valid JSON (the first {_JSON_PROBLEMS_LISTED} are named)"
        )
        found = [*found[:_JSON_PROBLEMS_LISTED], more]
    return found


def _collect_json_problems(
    value: Any, root: str, path: str, depth: int, open_containers: set[int], found: list[Problem]
) -> None:
    if len(found) > _JSON_PROBLEMS_LISTED:
        return
    if value is None or isinstance(value, (str, bool)):
        return
    if isinstance(value, int):
        try:
            int.__repr__(value)
        except ValueError:  # more digits than sys.get_int_max_str_digits()
            found.append(Problem(path, "is an integer too long to write as JSON"))
        return
    if isinstance(value, float):
        if math.isnan(value):
            found.append(Problem(path, "NaN is not valid JSON"))
        elif math.isinf(value):
            found.append(Problem(path, f"{'-' if value < 0 else ''}Infinity is not valid JSON"))
        return
    if not isinstance(value, (dict, list, tuple)):
        found.append(Problem(path, f"{type(value).__name__} is not valid JSON"))
        return
    if id(value) in open_containers:
        found.append(Problem(path, "contains itself (a reference cycle), which JSON cannot hold"))
        return
    if depth > JSON_MAX_DEPTH:
        found.append(Problem(root, f"is nested deeper than {JSON_MAX_DEPTH} levels"))
        return
    open_containers.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                _collect_json_problems(item, root, f"{path}.{key}", depth + 1, open_containers, found)
            else:
                found.append(Problem(path, f"key {shown(key)} is not a string; JSON object keys are strings"))
    else:
        for index, item in enumerate(value):
            _collect_json_problems(item, root, f"{path}[{index}]", depth + 1, open_containers, found)
    open_containers.discard(id(value))


def _phone_problems(value: Any, field: str) -> list[Problem]:
    if isinstance(value, str) and E164.fullmatch(value):
        return []
    return [Problem(field, f"must be an E.164 phone number such as '+15550100', got {shown(value)}")]


def _type_problems(body: Mapping[str, Any], types: Mapping[str, type | tuple[type, ...]]) -> list[Problem]:
    problems = []
    for field, expected in types.items():
        if field in body and not isinstance(body[field], expected):
            if expected is str or expected == (str, type(None)):
                kind = "a string"
            elif expected is bool:
                kind = "a boolean (true or false)"
            else:
                kind = "an object"
            problems.append(Problem(field, f"must be {kind}, got {type(body[field]).__name__}"))
    return problems


def fluents_action_update_problems(
    body: Mapping[str, Any],
    *,
    allowed_types: tuple[str, ...] = FLUENTS_ACTION_TYPES,
    current_type: str | None = None,
    type_pending: bool = False,
) -> list[Problem]:
    """
    Rules of ``POST /v1/actions/update``.

    :param allowed_types: the accepted ``type`` values; clients allow only real action types.
    :param current_type: the action's stored type (a server knows it; an operator reads it):
        ``config`` sent without ``type`` is checked against it, since the API checks ``config``
        against the type. Without either, ``config`` is refused: it cannot be checked.
    :param type_pending: the caller will read the action and check ``config`` against its stored
        type before writing; until then, only the rules of ``config`` that hold for every type apply.
    """
    problems = _type_problems(
        body, {"label": str, "description": str, "config": dict, "action_trigger": dict}
    )
    action_type = body.get("type")
    if "type" in body and action_type not in allowed_types:
        if action_type in FLUENTS_TRIGGER_TYPES:
            rule = f"{action_type!r} is a trigger type; it belongs in action_trigger.type"
        elif action_type in FLUENTS_PHRASE_CONDITIONS:
            rule = f"{action_type!r} is a phrase condition; it belongs in action_trigger phrase conditions"
        else:
            rule = f"must be one of {', '.join(allowed_types)}, got {shown(action_type)}"
        problems.append(Problem("type", rule))
    config = body.get("config")
    if isinstance(config, dict):
        problems += json_problems(config, "config")
        effective_type = action_type if "type" in body else current_type
        if effective_type is None:
            if not type_pending:
                problems.append(Problem("config", "needs the action type sent with it (action_type)"))
        elif effective_type in FLUENTS_TYPES_WITH_PHONE_NUMBER:
            if "phone_number" not in config:
                problems.append(Problem("config.phone_number", f"is required for {effective_type}"))
            else:
                problems += _phone_problems(config["phone_number"], "config.phone_number")
        if "place_primary_on_hold" in config and not isinstance(config["place_primary_on_hold"], bool):
            problems.append(Problem("config.place_primary_on_hold", "must be a boolean"))
    trigger = body.get("action_trigger")
    if isinstance(trigger, dict):
        problems += json_problems(trigger, "action_trigger")
        problems += _action_trigger_problems(trigger)
    return problems


def _action_trigger_problems(trigger: Mapping[str, Any]) -> list[Problem]:
    trigger_type = trigger.get("type")
    if trigger_type not in FLUENTS_TRIGGER_TYPES:
        return [Problem("action_trigger.type", f"must be one of {', '.join(FLUENTS_TRIGGER_TYPES)}")]
    config = trigger.get("config", {})
    if not isinstance(config, dict):
        return [Problem("action_trigger.config", f"must be an object, got {type(config).__name__}")]
    if trigger_type != "action_trigger_phrase_based":
        return []
    phrases = config.get("phrase_triggers")
    if not isinstance(phrases, list) or not phrases:
        return [Problem("action_trigger.config.phrase_triggers", "must be a non-empty list")]
    problems = []
    for index, phrase in enumerate(phrases):
        where = f"action_trigger.config.phrase_triggers[{index}]"
        if not isinstance(phrase, dict) or not isinstance(phrase.get("phrase"), str) or not phrase["phrase"]:
            problems.append(Problem(where, "needs a non-empty 'phrase' string"))
            continue
        conditions = phrase.get("conditions", [])
        if not isinstance(conditions, list) or any(c not in FLUENTS_PHRASE_CONDITIONS for c in conditions):
            problems.append(Problem(f"{where}.conditions", f"must list only {FLUENTS_PHRASE_CONDITIONS[0]}"))
    return problems


def fluents_number_update_problems(
    body: Mapping[str, Any], *, require_example_context: bool = True
) -> list[Problem]:
    """
    Rules of ``POST /v1/numbers/update``.

    ``example_context`` is any JSON object: the page types it as a bare ``object`` (Vocode's SDK had
    a map of strings, which Fluents does not state).

    :param require_example_context: the API requires it; an operator fills it in by reading the
        number first, so it checks the body it will send, not the user's arguments.
    """
    problems = _type_problems(
        body, {"label": str, "description": str, "outbound_only": bool, "example_context": dict}
    )
    if require_example_context and "example_context" not in body:
        problems.append(Problem("example_context", "is required and must be an object"))
    if isinstance(body.get("example_context"), dict):
        problems += json_problems(body["example_context"], "example_context")
    if "inbound_agent" in body:
        agent = body["inbound_agent"]
        valid = (
            agent is None
            or (isinstance(agent, str) and agent.strip() != "")
            or (isinstance(agent, dict) and isinstance(agent.get("id"), str) and agent["id"] != "")
        )
        if not valid:
            problems.append(
                Problem("inbound_agent", "must be an agent id, an object with an 'id', or None to detach")
            )
        elif isinstance(agent, dict):
            problems += json_problems(agent, "inbound_agent")
    return problems


def tines_action_update_problems(
    body: Mapping[str, Any], *, current_type: str | None = None
) -> list[Problem]:
    """
    Rules of ``PUT /api/v1/actions/{id}``, as the update page states them.

    Action ids may be integers or strings of digits (the page's own example quotes one).

    :param current_type: the action's stored type (``Agents::WebhookAgent``...), when known: only
        Receive Email and Webhook actions take ``num_runs_to_save``.
    """
    problems = _type_problems(
        body,
        {
            "name": str,
            "description": (str, type(None)),
            "options": dict,
            "disabled": bool,
            "monitor_failures": bool,
            "monitor_all_events": bool,
        },
    )
    if isinstance(body.get("options"), dict):
        problems += json_problems(body["options"], "options")
    for ids_field, links_field, key in _TINES_LINK_FIELDS:
        if ids_field in body and links_field in body:
            problems.append(Problem(links_field, f"is mutually exclusive with {ids_field}; send one of them"))
        if ids_field in body:
            ids = body[ids_field]
            if not isinstance(ids, list) or any(_tines_id(i) is None for i in ids):
                problems.append(
                    Problem(ids_field, "must be a list of action ids (positive integers below 2**63)")
                )
        if links_field in body:
            problems += _link_problems(body[links_field], links_field, key)
    if "position" in body:
        position = body["position"]
        if not (
            isinstance(position, dict)
            and set(position) == {"x", "y"}
            and all(_is_int(position[axis]) and abs(position[axis]) <= TINES_MAX_INT for axis in "xy")
        ):
            problems.append(Problem("position", "must be an object {x: int, y: int}"))
    if "schedule" in body:
        problems += _schedule_problems(body["schedule"])
    for field in ("monitor_no_events_emitted", "num_runs_to_save"):
        if field in body and not _is_positive_int(body[field]):
            problems.append(
                Problem(field, f"must be a positive integer below 2**63, got {shown(body[field])}")
            )
    if "num_runs_to_save" in body and current_type is not None and current_type not in TINES_RUN_SAVING_TYPES:
        problems.append(
            Problem(
                "num_runs_to_save",
                "applies only to Receive Email (Agents::IMAPAgent) and Webhook (Agents::WebhookAgent) "
                f"actions; this action is {current_type}",
            )
        )
    sent_pair = [field for field in TINES_MONITOR_PAIR if field in body]
    if len(sent_pair) == 1:
        other = next(f for f in TINES_MONITOR_PAIR if f not in body)
        problems.append(Problem(sent_pair[0], f"must be sent together with {other}"))
    if "monitor_no_events_emitted" in body and len(sent_pair) < 2:
        problems.append(
            Problem(
                "monitor_no_events_emitted", "needs both monitor_failures and monitor_all_events sent with it"
            )
        )
    return problems


def _schedule_problems(schedule: Any) -> list[Problem]:
    if schedule is None:
        return []
    if isinstance(schedule, dict):
        return json_problems(schedule, "schedule")
    if not isinstance(schedule, list):
        return [Problem("schedule", "must be a list of {cron, timezone} objects, an object or None")]
    problems = []
    for index, element in enumerate(schedule):
        where = f"schedule[{index}]"
        if isinstance(element, dict):
            problems += json_problems(element, where)
        else:
            problems.append(
                Problem(where, f"must be a {{cron, timezone}} object, got {type(element).__name__}")
            )
    return problems


def _link_problems(links: Any, field: str, key: str) -> list[Problem]:
    if not isinstance(links, list):
        return [Problem(field, f"must be a list of {{{key}, type}} objects")]
    problems = []
    for index, link in enumerate(links):
        where = f"{field}[{index}]"
        if not isinstance(link, dict) or _tines_id(link.get(key)) is None:
            problems.append(Problem(where, f"needs {key} as an action id (a positive integer below 2**63)"))
            continue
        if set(link) - {key, "type"}:
            problems.append(Problem(where, f"may only hold {key} and type"))
        if "type" in link and link["type"] not in TINES_LINK_TYPES:
            problems.append(Problem(f"{where}.type", f"must be one of {', '.join(TINES_LINK_TYPES)}"))
    return problems
