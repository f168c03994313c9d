"""What every state sensor of this provider shares: poke, defer, and the end of a deferral."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.hooks.settings import check_hook_params
from airflow_provider_fluents_tines.matching import Difference, format_differences
from airflow_provider_fluents_tines.object_task import ObjectTaskMixin
from airflow_provider_fluents_tines.redaction import redact, shown_value
from airflow_provider_fluents_tines.triggers.events import SUCCESS, TIMEOUT, StateEvent
from airflow_provider_fluents_tines.version_compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    conf,
)
from airflow_provider_fluents_tines.wait_log import WaitLog

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
    :param hook_params: settings for this task's hook, over the connection's extras: ``timeout``,
        ``max_attempts``, ``max_retry_wait`` and ``retry_policy`` (a dict of its fields); the
        trigger uses them too.

    The returned object shows secrets (values under keys Airflow's masker deems sensitive) as ``***``.
    """

    ui_color = "#e6f1f2"

    def __init__(
        self,
        *,
        expected: dict[str, Any],
        check: Callable[[dict[str, Any]], bool] | None = None,
        fail_on_missing: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hook_params = hook_params
        self.expected = expected
        self.check = check
        self.fail_on_missing = fail_on_missing
        self.deferrable = deferrable

    def _target(self) -> tuple[Any, Mapping[str, Any]]:
        if not isinstance(self.expected, Mapping) or not self.expected:
            raise validation.invalid("expected", "must be a non-empty dict of field -> value")
        return self.object_id(), self.expected

    # Slack past the trigger's own deadline before Airflow's deferral timeout fires: the trigger
    # normally ends first, with a message that says what it last saw.
    _DEFERRAL_SLACK_SECONDS = 60.0

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_fluents_tines.exceptions import ApiRequestError

        object_id, expected = self._target()
        wait_log = self._wait_log()
        # poke() may also be called on its own (tests, subclasses): then only the hook's bounds apply.
        deadline = getattr(self, "_deadline", None)
        if deadline is not None and time.time() >= deadline:
            if not self.reschedule:
                return False  # no read starts after the deadline; Airflow's loop ends the wait
            # Reschedule mode: Airflow itself schedules this last poke past the deadline, and this
            # process has seen nothing yet. One attempt's worth of reading lets the timeout say
            # what the object shows.
            deadline = time.time() + self.hook.settings.timeout
        try:
            current = self.hook.get_object(self.object_kind, object_id, deadline=deadline)
        except ApiRequestError as err:
            if err.http_status == 404 and not self.fail_on_missing:
                wait_log.saw_missing()
                self.log.info(
                    "%s %s does not exist yet; waiting.",
                    self.object_kind.noun.capitalize(),
                    shown_value(object_id),
                )
                return False
            wait_log.failed(str(err))
            if err.retryable:
                self.log.warning("%s; poking again later.", err)
                return False
            raise
        # Where the object lives (a Tines story): the trigger's first reads can then be shared ones.
        self._scope = self.object_kind.scope_of(current)
        found = self.object_kind.state_differences(current, expected)
        wait_log.saw(found)
        if found:
            self._log_waiting(object_id, found)
            return False
        if self.check is not None and not self.check(current):
            self.log.info(
                "%s %s shows the expected fields; check() is not satisfied yet.",
                self.object_kind.noun.capitalize(),
                shown_value(object_id),
            )
            return False
        return PokeReturnValue(is_done=True, xcom_value=redact(current))

    def execute(self, context: Context) -> Any:
        # Checked before any request, whichever way the wait goes (a wait past its deadline builds no hook).
        check_hook_params(self.hook_params)
        # The wait's deadline is fixed before the first poke: the worker-side poke, hook retries and
        # the trigger's polls all count toward the one timeout.
        self._deadline = self._compute_deadline(context)
        self._log = WaitLog()
        if not self.deferrable or self.check is not None:
            if self.deferrable:
                self.log.warning("check= cannot run in the triggerer: waiting in %s mode instead.", self.mode)
            try:
                return super().execute(context)
            except (AirflowSensorTimeout, AirflowSkipException) as err:
                if not str(err).startswith("Sensor has timed out"):
                    raise
                seen = self._log.describe()
                raise type(err)(f"{err} {seen[:1].upper()}{seen[1:]}.") from err
        try:
            first = self.poke(context)
        except (AirflowSensorTimeout, AirflowFailException) as err:
            # As Airflow's own poke loop maps a failing poke (the trigger's failures resume the same way).
            if self.soft_fail or getattr(self, "never_fail", False):
                raise AirflowSkipException(
                    f"Skipping ({'soft_fail' if self.soft_fail else 'never_fail'}): {err}"
                ) from err
            raise
        if isinstance(first, PokeReturnValue):
            return first.xcom_value
        from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger

        object_id, expected = self._target()
        max_wait = self.max_wait.total_seconds() if isinstance(self.max_wait, timedelta) else self.max_wait
        left = max(0.0, self._deadline - time.time())
        self.defer(
            trigger=ObjectStateTrigger(
                conn_id=self.connection_id(),
                hook_params=check_hook_params(self.hook_params),
                object_kind=self.object_kind.key,
                object_id=object_id,
                expected=dict(expected),
                end_time=self._deadline,
                fail_on_missing=self.fail_on_missing,
                poke_interval=self.poke_interval,
                exponential_backoff=self.exponential_backoff,
                max_interval=float(max_wait or 3600),
                wait_log=self._log.as_dict(),
                scope=getattr(self, "_scope", None),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=left + self._DEFERRAL_SLACK_SECONDS),
        )

    def execute_complete(self, context: Context, event: StateEvent) -> Any:
        if event["status"] == SUCCESS:
            self.log.info("%s shows the expected state.", self.object_kind.noun.capitalize())
            return event["object"]
        if event["status"] == TIMEOUT:
            seen = WaitLog.from_dict(event.get("wait_log")).describe()
            message = f"Sensor timed out after {self.timeout} s; {seen}."
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        error_class = AirflowException if event.get("retryable") else AirflowFailException
        raise error_class(event.get("message") or "the trigger failed")

    def _compute_deadline(self, context: Context) -> float:
        """
        The epoch second the wait ends: ``timeout`` after this try started, or in reschedule mode
        after the first reschedule of this try (as Airflow counts it).
        """
        started = time.time()
        ti = context.get("ti") if isinstance(context, Mapping) else None
        if self.reschedule and ti is not None and hasattr(ti, "get_first_reschedule_date"):
            first = ti.get_first_reschedule_date(context)
            if first is not None:
                started = first.timestamp()
        return started + self.timeout

    def _wait_log(self) -> WaitLog:
        if getattr(self, "_log", None) is None:
            self._log = WaitLog()
        return self._log

    def _log_waiting(self, object_id: Any, found: list[Difference]) -> None:
        self.log.info(
            "%s %s still differs: %s",
            self.object_kind.noun.capitalize(),
            shown_value(object_id),
            format_differences(found),
        )
