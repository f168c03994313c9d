"""What every state sensor of this provider shares: poke, defer, and the end of a deferral."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.matching import Difference, format_differences
from airflow_provider_fluents_tines.object_task import ObjectTaskMixin

if TYPE_CHECKING:
    from airflow.sdk import Context


class BaseObjectStateSensor(ObjectTaskMixin, BaseSensorOperator):
    """
    Wait until an API object shows an expected state; return the object as XCom.

    :param expected: field -> value the object must show; nested dicts match as subsets, lists and
        scalars by equality. Field names and shapes are those of the update request.
    :param check: an extra predicate on the object (poke and reschedule modes only: a callable
        cannot travel to the triggerer, so a deferrable sensor given one waits in poke mode).
    :param fail_on_missing: fail at once when the object does not exist (404) instead of waiting.
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    """

    ui_color = "#e6f1f2"

    def __init__(
        self,
        *,
        expected: dict[str, Any],
        check: Callable[[dict[str, Any]], bool] | None = None,
        fail_on_missing: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.expected = expected
        self.check = check
        self.fail_on_missing = fail_on_missing
        self.deferrable = deferrable

    def _target(self) -> tuple[Any, Mapping[str, Any]]:
        if not isinstance(self.expected, Mapping) or not self.expected:
            raise validation.invalid("expected", "must be a non-empty dict of field -> value")
        return self.object_id(), self.expected

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_fluents_tines.exceptions import ApiRequestError

        object_id, expected = self._target()
        try:
            current = self.hook.get_object(self.object_kind, object_id)
        except ApiRequestError as err:
            if err.http_status == 404 and not self.fail_on_missing:
                self.log.info("%s %s does not exist yet; waiting.", self.object_kind.capitalize(), object_id)
                return False
            if err.retryable:
                self.log.warning("%s; poking again later.", err)
                return False
            raise
        found = self.hook.state_differences(self.object_kind, current, expected)
        if found:
            self._log_waiting(object_id, found)
            return False
        if self.check is not None and not self.check(current):
            self.log.info(
                "%s %s shows the expected fields; check() is not satisfied yet.", self.object_kind, object_id
            )
            return False
        return PokeReturnValue(is_done=True, xcom_value=current)

    def execute(self, context: Context) -> Any:
        if not self.deferrable or self.check is not None:
            if self.deferrable:
                self.log.warning("check= cannot run in the triggerer: waiting in %s mode instead.", self.mode)
            return super().execute(context)
        first = self.poke(context)
        if isinstance(first, PokeReturnValue):
            return first.xcom_value
        from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger

        object_id, expected = self._target()
        max_wait = self.max_wait.total_seconds() if isinstance(self.max_wait, timedelta) else self.max_wait
        self.defer(
            trigger=ObjectStateTrigger(
                hook_class_path=self.hook_class_path,
                conn_id=getattr(self, self.conn_id_argument),
                object_kind=self.object_kind,
                object_id=object_id,
                expected=dict(expected),
                end_time=time.time() + self.timeout,
                fail_on_missing=self.fail_on_missing,
                poke_interval=self.poke_interval,
                exponential_backoff=self.exponential_backoff,
                max_interval=float(max_wait or 3600),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        status = event.get("status")
        if status == "success":
            self.log.info("%s shows the expected state.", self.object_kind.capitalize())
            return event["object"]
        if status == "timeout":
            still = format_differences([Difference.from_dict(entry) for entry in event.get("diff", [])])
            message = (
                f"Sensor timed out after {self.timeout} s; still differing: {still or 'object not found'}"
            )
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        error_class = AirflowException if event.get("retryable") else AirflowFailException
        raise error_class(event.get("message", "the trigger failed"))

    def _log_waiting(self, object_id: Any, found: list[Difference]) -> None:
        self.log.info(
            "%s %s still differs: %s", self.object_kind.capitalize(), object_id, format_differences(found)
        )
