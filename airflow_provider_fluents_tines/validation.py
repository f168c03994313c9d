"""
The request rules of the three update endpoints and of their identifiers, each written once.

Operators and hooks call these before sending anything; the sandbox calls the same functions to
answer 400 like the real servers. Each ``*_problems`` function returns every broken rule, so one
error can name them all. Nothing here imports Airflow at module level: the sandbox starts without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.exceptions import InvalidFieldError

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")

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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0


def phone_number(value: Any, field: str = "phone_number") -> str:
    """Return ``value`` if it is an E.164 phone number (``+`` then up to 15 digits), else raise."""
    if not isinstance(value, str) or not E164.match(value):
        raise invalid(field, f"must be an E.164 phone number such as '+15550100', got {value!r}")
    return value


def fluents_action_id(value: Any, field: str = "action_id") -> str:
    """Return a Fluents action id (a non-empty string without whitespace), else raise."""
    if not isinstance(value, str) or not value.strip() or any(ch.isspace() for ch in value):
        raise invalid(field, f"must be a non-empty action id string, got {value!r}")
    return value


def tines_action_id(value: Any, field: str = "action_id") -> int:
    """Return a Tines action id as an int; a string of digits is accepted (rendered templates are strings)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not _is_positive_int(value):
        raise invalid(field, f"must be a positive integer, got {value!r}")
    return value


def _phone_problems(value: Any, field: str) -> list[Problem]:
    if isinstance(value, str) and E164.match(value):
        return []
    return [Problem(field, f"must be an E.164 phone number such as '+15550100', got {value!r}")]


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
) -> list[Problem]:
    """
    Rules of ``POST /v1/actions/update``.

    :param allowed_types: the accepted ``type`` values; clients allow only real action types.
    :param current_type: the action's stored type, known to a server; a client that sends
        ``config`` must send ``type`` with it, since the API checks ``config`` against the type.
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
            rule = f"must be one of {', '.join(allowed_types)}, got {action_type!r}"
        problems.append(Problem("type", rule))
    config = body.get("config")
    if isinstance(config, dict):
        effective_type = action_type if "type" in body else current_type
        if effective_type is None:
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
        problems += _action_trigger_problems(trigger)
    return problems


def _action_trigger_problems(trigger: Mapping[str, Any]) -> list[Problem]:
    trigger_type = trigger.get("type")
    if trigger_type not in FLUENTS_TRIGGER_TYPES:
        return [Problem("action_trigger.type", f"must be one of {', '.join(FLUENTS_TRIGGER_TYPES)}")]
    if trigger_type != "action_trigger_phrase_based":
        return []
    phrases = (trigger.get("config") or {}).get("phrase_triggers")
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

    :param require_example_context: the API requires it; an operator fills it in by reading the
        number first, so it checks the body it will send, not the user's arguments.
    """
    problems = _type_problems(
        body, {"label": str, "description": str, "outbound_only": bool, "example_context": dict}
    )
    if require_example_context and "example_context" not in body:
        problems.append(Problem("example_context", "is required and must be an object"))
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
    return problems


def tines_action_update_problems(body: Mapping[str, Any]) -> list[Problem]:
    """Rules of ``PUT /api/v1/actions/{id}``, as the update page states them."""
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
    for ids_field, links_field, key in (
        ("source_ids", "links_to_sources", "source_id"),
        ("receiver_ids", "links_to_receivers", "receiver_id"),
    ):
        if ids_field in body and links_field in body:
            problems.append(Problem(links_field, f"is mutually exclusive with {ids_field}; send one of them"))
        if ids_field in body:
            ids = body[ids_field]
            if not isinstance(ids, list) or not all(_is_positive_int(i) for i in ids):
                problems.append(Problem(ids_field, "must be a list of positive integer action ids"))
        if links_field in body:
            problems += _link_problems(body[links_field], links_field, key)
    if "position" in body:
        position = body["position"]
        if not (
            isinstance(position, dict)
            and set(position) == {"x", "y"}
            and _is_int(position["x"])
            and _is_int(position["y"])
        ):
            problems.append(Problem("position", "must be an object {x: int, y: int}"))
    if "schedule" in body and not isinstance(body["schedule"], (list, dict, type(None))):
        problems.append(Problem("schedule", "must be a list of {cron, timezone} objects, an object or None"))
    for field in ("monitor_no_events_emitted", "num_runs_to_save"):
        if field in body and not _is_positive_int(body[field]):
            problems.append(Problem(field, f"must be a positive integer, got {body[field]!r}"))
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


def _link_problems(links: Any, field: str, key: str) -> list[Problem]:
    if not isinstance(links, list):
        return [Problem(field, f"must be a list of {{{key}, type}} objects")]
    problems = []
    for index, link in enumerate(links):
        where = f"{field}[{index}]"
        if not isinstance(link, dict) or not _is_positive_int(link.get(key)):
            problems.append(Problem(where, f"needs {key} as a positive integer"))
            continue
        if set(link) - {key, "type"}:
            problems.append(Problem(where, f"may only hold {key} and type"))
        if "type" in link and link["type"] not in TINES_LINK_TYPES:
            problems.append(Problem(f"{where}.type", f"must be one of {', '.join(TINES_LINK_TYPES)}"))
    return problems
