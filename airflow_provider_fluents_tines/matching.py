"""
Comparing an expected state with an observed object: the one matcher behind sensors, triggers
and the operators' idempotency check and dry-run diff.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple, TypedDict

from airflow_provider_fluents_tines.redaction import REDACTED, is_sensitive_path, redact


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


class FieldDifference(TypedDict):
    """
    One differing field, as XComs, trigger events and wait logs carry it (the one vocabulary):
    what the object shows (``current``) and what the task asked for (``requested``), sensitive values
    starred.
    """

    field: str
    current: Any
    requested: Any


class Difference(NamedTuple):
    """A field whose observed value differs from the expected one; ``path`` is dotted."""

    path: str
    expected: Any
    observed: Any

    def as_dict(self) -> FieldDifference:
        """The difference for XCom, trigger events and messages: values under sensitive keys redacted."""
        # A field absent on either side (missing before, or removed by the write) is None: JSON has no "absent".
        observed = None if self.observed is MISSING else self.observed
        expected = None if self.expected is MISSING else self.expected
        return {"field": self.path, "current": self._shown(observed), "requested": self._shown(expected)}

    def _shown(self, value: Any) -> Any:
        if value is MISSING or value is None:
            return value
        return REDACTED if is_sensitive_path(self.path) else redact(value)

    @classmethod
    def from_dict(cls, entry: FieldDifference) -> Difference:
        """The inverse of :meth:`as_dict`, for differences that travelled in a trigger event."""
        return cls(entry["field"], entry["requested"], entry["current"])


def differences(
    expected: Mapping[str, Any], observed: Mapping[str, Any], *, subset: bool
) -> list[Difference]:
    """
    List the expected fields that ``observed`` does not show.

    :param subset: True for a deep partial match (a nested expected dict matches any observed dict
        holding at least its keys, as a sensor wants); False to compare each top-level field by
        equality (as an update that replaces the whole field will leave it).
    """
    found: list[Difference] = []
    _collect(expected, observed, "", subset, found)
    return found


def _collect(
    expected: Mapping[str, Any], observed: Any, prefix: str, subset: bool, out: list[Difference]
) -> None:
    for key, want in expected.items():
        path = f"{prefix}{key}"
        have = observed.get(key, MISSING) if isinstance(observed, Mapping) else MISSING
        if subset and isinstance(want, Mapping) and isinstance(have, Mapping):
            _collect(want, have, f"{path}.", subset, out)
        elif have is MISSING or not _equal(want, have):
            out.append(Difference(path, want, have))


def _equal(want: Any, have: Any) -> bool:
    # 1 == True in Python; an API's boolean must not satisfy an expected integer, nor the reverse.
    if isinstance(want, bool) or isinstance(have, bool):
        return type(want) is type(have) and want == have
    if isinstance(want, Mapping) and isinstance(have, Mapping):
        return want.keys() == have.keys() and all(_equal(want[k], have[k]) for k in want)
    if isinstance(want, (list, tuple)) and isinstance(have, (list, tuple)):
        return len(want) == len(have) and all(_equal(w, h) for w, h in zip(want, have, strict=True))
    return bool(want == have)


def leaf_differences(found: list[Difference]) -> list[Difference]:
    """
    The same differences, down to the leaves that differ: nested dicts by key (a key only one side
    has shows ``<missing>`` on the other) and lists of equal length by index, so that a log line names
    ``options.subject`` rather than a whole ``options`` cut short.
    """
    leaves: list[Difference] = []
    for difference in found:
        _split(difference.path, difference.expected, difference.observed, leaves)
    return leaves


def _split(path: str, expected: Any, observed: Any, out: list[Difference]) -> None:
    if isinstance(expected, Mapping) and isinstance(observed, Mapping):
        for key in [*expected, *(k for k in observed if k not in expected)]:
            want, have = expected.get(key, MISSING), observed.get(key, MISSING)
            if want is MISSING or have is MISSING or not _equal(want, have):
                _split(f"{path}.{key}", want, have, out)
    elif (
        isinstance(expected, (list, tuple))
        and isinstance(observed, (list, tuple))
        and len(expected) == len(observed)
    ):
        for index, (want, have) in enumerate(zip(expected, observed, strict=True)):
            if not _equal(want, have):
                _split(f"{path}[{index}]", want, have, out)
    else:
        out.append(Difference(path, expected, observed))


def format_differences(found: list[Difference], *, limit: int = 10) -> str:
    """A short, readable ``field: observed -> expected`` listing for logs; secrets show as ``***``."""
    lines = [
        f"{d.path}: {_short(d._shown(d.observed))} -> {_short(d._shown(d.expected))}" for d in found[:limit]
    ]
    if len(found) > limit:
        lines.append(f"... and {len(found) - limit} more")
    return "; ".join(lines)


def _short(value: Any, width: int = 80) -> str:
    text = repr(value) if value is MISSING else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."
