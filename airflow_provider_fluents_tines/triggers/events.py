"""
The events :class:`~triggers.state.ObjectStateTrigger` yields, as the sensors read them back: one
definition of each shape and status. Light to import (sensors import it at DAG-parse time).
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias, TypedDict

from airflow_provider_fluents_tines.matching import FieldDifference

SUCCESS: Literal["success"] = "success"
TIMEOUT: Literal["timeout"] = "timeout"
FAILED: Literal["failed"] = "failed"


class SuccessEvent(TypedDict):
    """The object shows the expected state; ``object`` is as read, secrets starred."""

    status: Literal["success"]
    object: dict[str, Any]


class TimeoutEvent(TypedDict):
    """The deadline passed: the last differences seen and the wait log (:class:`~wait_log.WaitLog`)."""

    status: Literal["timeout"]
    diff: list[FieldDifference]
    wait_log: dict[str, Any]


class FailedEvent(TypedDict):
    """The wait cannot succeed (a non-retryable answer) or the trigger broke (``retryable``)."""

    status: Literal["failed"]
    message: str
    http_status: int | None
    retryable: bool


StateEvent: TypeAlias = SuccessEvent | TimeoutEvent | FailedEvent
