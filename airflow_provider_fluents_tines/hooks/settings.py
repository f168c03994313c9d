"""
A hook's settings, as pure values: the retry policy, ``Retry-After``, and the checks of the numeric
settings and of a task's ``hook_params``. No HTTP stack: sensors and the trigger check
``hook_params`` with these before anything is imported or sent.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from airflow_provider_fluents_tines.exceptions import InvalidFieldError

# 408 and 429 are the only client errors that waiting can fix.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

DEFAULT_TIMEOUT = 30.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """
    When and how long to wait before trying a request again; shared by hooks and triggers.

    :param max_attempts: attempts per call, the first included.
    :param max_retry_wait: the longest a call may spend retrying, in seconds; a ``Retry-After``
        that would pass it ends the call at once.
    :param backoff_base: the first backoff, doubled after each failure, with jitter.
    :param backoff_max: the cap of one backoff.
    """

    max_attempts: int = 5
    max_retry_wait: float = 120.0
    backoff_base: float = 1.0
    backoff_max: float = 30.0

    @staticmethod
    def is_transient(status_code: int) -> bool:
        return status_code in TRANSIENT_STATUSES

    def backoff(self, failures: int) -> float:
        """Exponential backoff with jitter after ``failures`` consecutive failures (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** max(0, failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def delay(self, failures: int, retry_after: float | None) -> float:
        """The server's ``Retry-After`` when it gave one, else the backoff."""
        return retry_after if retry_after is not None else self.backoff(failures)


def as_bool(value: Any, field: str) -> bool:
    """``value`` as a boolean (``true``/``false`` strings too), or an error naming ``field``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidFieldError(field, f"must be true or false, got {value!r}")


def as_number(value: Any, field: str, *, minimum: float, integer: bool = False) -> float:
    """``value`` as a finite number >= ``minimum`` (a whole one if ``integer``), or an error naming ``field``."""
    number: float | None
    try:
        number = float(value)
        if not math.isfinite(number) or (integer and not number.is_integer()):
            number = None
        elif integer:
            number = int(str(value).strip()) if isinstance(value, str) else int(number)
    except (TypeError, ValueError, OverflowError):
        number = None
    if isinstance(value, bool) or number is None or number < minimum:
        kind = "an integer" if integer else "a number"
        raise InvalidFieldError(field, f"must be {kind} >= {minimum}, got {value!r}")
    return number


#: name -> (minimum, integer): the numeric settings, from extras, hook arguments or ``hook_params``.
NUMBER_SETTINGS: dict[str, tuple[float, bool]] = {
    "timeout": (0.001, False),
    "max_attempts": (1, True),
    "max_retry_wait": (0, False),
}
_POLICY_FIELDS: dict[str, tuple[float, bool]] = {
    "max_attempts": (1, True),
    "max_retry_wait": (0, False),
    "backoff_base": (0, False),
    "backoff_max": (0, False),
}
#: What a task's ``hook_params`` may set: the hooks' keyword arguments that are plain settings.
HOOK_PARAMS = (*NUMBER_SETTINGS, "retry_policy")


def as_policy(value: Any, field: str) -> tuple[RetryPolicy, frozenset[str]]:
    """
    A checked :class:`RetryPolicy` from a policy or a dict of some of its fields, and the fields it
    sets (all of a policy's; a dict's own): those win over the connection's extras.
    """
    if isinstance(value, RetryPolicy):
        value = asdict(value)
    elif not isinstance(value, Mapping):
        raise InvalidFieldError(field, f"must be a RetryPolicy or a dict of {', '.join(_POLICY_FIELDS)}")
    unknown = sorted(map(str, set(value) - set(_POLICY_FIELDS)))
    if unknown:
        raise InvalidFieldError(f"{field}.{unknown[0]}", f"is not a field; use {', '.join(_POLICY_FIELDS)}")
    checked: dict[str, Any] = {
        name: as_number(number, f"{field}.{name}", minimum=minimum, integer=integer)
        for name, number in value.items()
        if number is not None
        for minimum, integer in [_POLICY_FIELDS[name]]
    }
    return replace(RetryPolicy(), **checked), frozenset(checked)


def check_hook_params(hook_params: Any) -> dict[str, Any]:
    """
    A task's ``hook_params`` checked, each error naming ``hook_params.<name>``, as JSON a trigger's
    kwargs can carry: numbers only (``retry_policy`` as a dict of the fields it sets; None values,
    which mean the default, left out).
    """
    if hook_params is None:
        return {}
    if not isinstance(hook_params, Mapping):
        raise InvalidFieldError("hook_params", f"must be a dict of {', '.join(HOOK_PARAMS)}")
    unknown = sorted(map(str, set(hook_params) - set(HOOK_PARAMS)))
    if unknown:
        raise InvalidFieldError(
            f"hook_params.{unknown[0]}", f"is not a hook setting; use {', '.join(HOOK_PARAMS)}"
        )
    checked: dict[str, Any] = {}
    for name, value in hook_params.items():
        if value is None:
            continue
        if name == "retry_policy":
            policy, given = as_policy(value, "hook_params.retry_policy")
            checked[name] = {f.name: getattr(policy, f.name) for f in fields(policy) if f.name in given}
        else:
            minimum, integer = NUMBER_SETTINGS[name]
            checked[name] = as_number(value, f"hook_params.{name}", minimum=minimum, integer=integer)
    return checked
