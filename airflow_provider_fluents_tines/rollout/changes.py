"""
What a rollout changes, and in which waves: pure values, checked without a request.

A change names an object kind (``"fluents.number"``, ``"fluents.action"``, ``"tines.action"``),
an object id and the desired fields, in the API's field names (the body of the kind's update).
The same schema is read from Python, from XCom and from a YAML or JSON file (:func:`load_changes`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.objects import KINDS, ObjectKind
from airflow_provider_fluents_tines.redaction import digest_key, redact
from airflow_provider_fluents_tines.validation import Problem, invalid, raise_for, shown

#: The file schema, as documented in the README ("Rollouts"): a mapping with ``changes``, a list of these.
CHANGE_KEYS = frozenset({"kind", "id", "fields"})


@dataclass(frozen=True)
class Change:
    """
    One object's desired state.

    :param kind: the object kind's key: ``"fluents.number"``, ``"fluents.action"`` or ``"tines.action"``.
    :param id: the object's id (a phone number for Fluents numbers, an integer for Tines actions).
    :param fields: API field -> desired value (nested dicts are matched partially, as sensors do).
    """

    kind: str
    id: Any
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def object_kind(self) -> ObjectKind:
        return KINDS[self.kind]

    @property
    def key(self) -> str:
        """Names the object across the rollout's tasks and XComs: ``"tines.action:90005"``."""
        return f"{self.kind}:{self.id}"

    def as_dict(self) -> dict[str, Any]:
        fields = dict(self.fields) if isinstance(self.fields, Mapping) else self.fields
        return {"kind": self.kind, "id": self.id, "fields": fields}

    def digest(self) -> str:
        """
        A keyed hash of the desired state: the plan and the later tasks check they mean the same
        change. Keyed (:func:`~redaction.digest_key`), since it is stored in XCom and the fields may
        hold a secret.
        """
        canonical = json.dumps(self.as_dict(), sort_keys=True, default=str, separators=(",", ":"))
        return hmac.new(_digest_key(), canonical.encode(), hashlib.sha256).hexdigest()[:16]


@functools.cache
def _digest_key() -> bytes:
    return digest_key("rollout")


def _is_template(value: Any) -> bool:
    """A value Airflow will render at run time (its rules are checked then, by the plan)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(_is_template(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_is_template(item) for item in value)
    return False


def _template_problems(value: Any, path: str) -> list[Problem]:
    """
    Strings Airflow would fail to render: Jinja markers that do not parse, such as a Tines formula
    ``{{.x}}`` written bare (Airflow renders every templated string; escape it as ``{{ '{{' }}.x}}``).
    """
    if isinstance(value, str):
        if not _is_template(value):
            return []
        import jinja2

        try:
            jinja2.Environment().parse(value)
        except jinja2.TemplateSyntaxError as err:
            return [
                Problem(
                    path,
                    f"is rendered by Airflow as a Jinja template and does not parse ({err.message}); write "
                    "a literal '{{' as {{ '{{' }} (Tines formulas), or pass the changes from a task (XComArg)",
                )
            ]
        return []
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in _template_problems(item, f"{path}.{key}")]
    if isinstance(value, (list, tuple)):
        return [p for index, item in enumerate(value) for p in _template_problems(item, f"{path}[{index}]")]
    return []


def is_plain(value: Any) -> bool:
    """Only JSON values and :class:`Change` objects, with no Jinja template in any string: nothing to render."""
    if isinstance(value, str):
        return not _is_template(value)
    if value is None or isinstance(value, (bool, int, float, Change)):
        return not isinstance(value, Change) or is_plain(value.as_dict())
    if isinstance(value, Mapping):
        return all(isinstance(key, str) and is_plain(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(is_plain(item) for item in value)
    return False


def as_change(value: Any, where: str, *, rendered: bool = False) -> Change:
    """
    One change from a :class:`Change` or a mapping of ``kind``, ``id`` and ``fields``, its id checked
    by its kind's rule and its fields by the update's rules on their own (nothing is read).
    Values still holding a Jinja template are left for the plan to check once rendered.

    :param where: names the change in errors (``changes[3]``).
    :param rendered: the values were rendered already (in a task: a ``{{`` left is literal text,
        a Tines formula say), so every rule applies.
    """
    if isinstance(value, Change):
        value = value.as_dict()
    if not isinstance(value, Mapping):
        raise invalid(where, f"must be a mapping of kind, id and fields, got {shown(redact(value))}")
    unknown = sorted(set(value) - CHANGE_KEYS, key=str)
    if unknown:
        raise invalid(where, f"has unknown keys {unknown}; a change has kind, id and fields")
    kind_key = value.get("kind")
    if not isinstance(kind_key, str) or kind_key not in KINDS:
        raise invalid(f"{where}.kind", f"must be one of {sorted(KINDS)}, got {shown(kind_key)}")
    kind = KINDS[kind_key]
    fields = value.get("fields")
    if not isinstance(fields, Mapping) or not fields:
        raise invalid(f"{where}.fields", "must be a non-empty mapping of API field -> desired value")
    if not all(isinstance(name, str) for name in fields):
        raise invalid(f"{where}.fields", "field names must be strings")
    if not rendered:
        problems = _template_problems(value.get("id"), f"{where}.id")
        raise_for(problems + _template_problems(fields, f"{where}.fields"))
    object_id = value.get("id")
    if rendered or not _is_template(object_id):
        try:
            object_id = kind.object_id(object_id)
        except InvalidFieldError as err:
            raise invalid(f"{where}.id", err.rule) from None
    checked = dict(fields)
    if rendered or not _is_template(checked):
        checked = kind.prepare_fields(checked)
        problems = kind.update_problems(checked, complete=False)
        raise_for([Problem(f"{where}.fields.{problem.field}", problem.rule) for problem in problems])
    return Change(kind_key, object_id, checked)


def as_changes(values: Any, where: str = "changes", *, rendered: bool = False) -> list[Change]:
    """Every change, checked (:func:`as_change`); one object may appear once."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise invalid(where, f"must be a list of changes, got {shown(values)}")
    if not values:
        raise invalid(where, "must hold at least one change")
    changes = [as_change(value, f"{where}[{index}]", rendered=rendered) for index, value in enumerate(values)]
    seen: dict[str, int] = {}
    for index, change in enumerate(changes):
        if change.key in seen and (rendered or not _is_template(change.id)):
            raise invalid(
                f"{where}[{index}]", f"changes {change.key} again (first at {where}[{seen[change.key]}])"
            )
        seen[change.key] = index
    return changes


def load_changes(path: str | Path) -> list[Change]:
    """
    The changes in a YAML (``.yaml``/``.yml``) or JSON (``.json``) file: a mapping whose ``changes``
    key holds the list, each ``{kind, id, fields}``. Checked now: call it at DAG parse time, and a
    bad file is an import error naming the entry and the rule.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        document = yaml.safe_load(text)
    elif path.suffix == ".json":
        document = json.loads(text)
    else:
        raise invalid(str(path), "must be a .yaml, .yml or .json file")
    if not isinstance(document, Mapping) or set(document) != {"changes"}:
        raise invalid(str(path), "must be a mapping with one key, changes (a list of {kind, id, fields})")
    return as_changes(document["changes"], f"{path.name}: changes")


def check_waves(waves: Any) -> list[int | float]:
    """
    Wave sizes: a count (an int >= 1) or a fraction of all changes (a float in (0, 1]); the last
    wave always takes whatever is left. ``[1, 0.25, 1.0]``: a canary, a quarter, the rest.
    """
    if isinstance(waves, (str, bytes)) or not isinstance(waves, Sequence) or not waves:
        raise invalid("waves", f"must be a non-empty list of counts or fractions, got {shown(waves)}")
    for index, size in enumerate(waves):
        if isinstance(size, bool) or not isinstance(size, (int, float)):
            raise invalid(f"waves[{index}]", f"must be a count or a fraction, got {shown(size)}")
        if isinstance(size, int) and size < 1:
            raise invalid(f"waves[{index}]", f"a count must be at least 1, got {size}")
        if isinstance(size, float) and not 0 < size <= 1:
            raise invalid(f"waves[{index}]", f"a fraction must be in (0, 1], got {size}")
    return list(waves)


def wave_sizes(waves: Sequence[int | float], total: int) -> list[int]:
    """How many of ``total`` changes each wave takes, in order (a wave may be empty; the last takes the rest)."""
    sizes: list[int] = []
    left = total
    for index, size in enumerate(waves):
        if index == len(waves) - 1:
            count = left
        elif isinstance(size, float):
            count = min(left, math.ceil(size * total))
        else:
            count = min(left, size)
        sizes.append(count)
        left -= count
    return sizes
