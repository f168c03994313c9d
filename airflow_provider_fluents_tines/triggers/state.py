"""The one trigger behind every deferrable sensor of this provider: poll an object until it matches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_fluents_tines.exceptions import (
    ApiRequestError,
    InvalidFieldError,
    InvalidTriggerArgument,
)
from airflow_provider_fluents_tines.hooks.settings import check_hook_params
from airflow_provider_fluents_tines.matching import FieldDifference
from airflow_provider_fluents_tines.objects import KINDS
from airflow_provider_fluents_tines.redaction import redact, shown_value
from airflow_provider_fluents_tines.triggers.events import (
    FAILED,
    SUCCESS,
    TIMEOUT,
    FailedEvent,
    SuccessEvent,
    TimeoutEvent,
)
from airflow_provider_fluents_tines.triggers.poller import prepare_hook, read_object, subscribe
from airflow_provider_fluents_tines.wait_log import WaitLog

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.base import BaseServiceHook


__all__ = ["KINDS", "ObjectStateTrigger"]  # KINDS: the kinds a trigger can wait on, by their key


class ObjectStateTrigger(BaseTrigger):
    """
    Poll one object until it shows ``expected``, then yield exactly one event. The reads go through
    the triggerer's shared poller (:mod:`triggers.poller`): one GET, or a list page shared with the
    other triggers waiting on objects of the same connection and kind.

    Between polls it sleeps ``poke_interval`` (doubling up to ``max_interval`` with
    ``exponential_backoff``); after an error it sleeps at least that long and at least what the
    retry policy or the server's ``Retry-After`` asks, so it never re-polls at once. It stops at
    ``end_time`` by itself, so ``dag.test()`` cannot hang on it. Its kwargs hold ids, never the API key.

    Events (``triggers.events``): :class:`SuccessEvent`, :class:`TimeoutEvent` (what the wait last
    saw, see :class:`WaitLog`) or :class:`FailedEvent`. No poll starts at or after ``end_time``,
    and the wait ends at it even while a shared read is still in flight.

    :param conn_id: the connection id.
    :param object_kind: the kind's key: ``"fluents.action"``, ``"fluents.number"`` or ``"tines.action"``.
    :param object_id: the object's id (a phone number for Fluents numbers).
    :param expected: field -> value, matched as a deep partial match.
    :param fail_on_missing: end with ``failed`` on 404 instead of waiting for the object to appear.
    :param poke_interval: seconds between polls.
    :param exponential_backoff: double the interval after each unmatched poll.
    :param max_interval: the cap of the interval, in seconds.
    :param end_time: the epoch second at which to give up with ``timeout``.
    :param wait_log: what the wait saw before deferring (the worker's first poke), as a dict.
    :param hook_params: the task's hook settings (``timeout``, ``max_attempts``, ``max_retry_wait``,
        ``retry_policy`` as a dict); numbers only, never a secret.
    :param scope: where the object was last seen (a Tines action's ``story_id``), so that the
        shared poller can read it with its story's other waiting actions from the first poll.
    """

    # The clock and the pause between polls: attributes, so that unit tests drive the loop without waiting.
    _now: Callable[[], float] = staticmethod(time.time)
    _sleep: Callable[[float], Awaitable[None]] = staticmethod(asyncio.sleep)

    def __init__(
        self,
        *,
        conn_id: str,
        object_kind: str,
        object_id: Any,
        expected: dict[str, Any],
        end_time: float,
        fail_on_missing: bool = False,
        poke_interval: float = 60.0,
        exponential_backoff: bool = False,
        max_interval: float = 3600.0,
        wait_log: dict[str, Any] | None = None,
        hook_params: dict[str, Any] | None = None,
        scope: Any = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        if object_kind not in KINDS:  # fails in the task that defers, not later in the triggerer
            raise InvalidTriggerArgument(
                "object_kind", f"must be one of {sorted(KINDS)}, got {object_kind!r}"
            )
        self.kind = KINDS[object_kind]
        self.object_kind = object_kind
        self.object_id = object_id
        self.expected = expected
        self.end_time = end_time
        self.fail_on_missing = fail_on_missing
        self.poke_interval = poke_interval
        self.exponential_backoff = exponential_backoff
        self.max_interval = max_interval
        self.wait_log = wait_log
        # Checked where the trigger is made (in the deferring task): kwargs hold numbers only.
        self.hook_params = check_hook_params(hook_params) or None
        self.scope = scope

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "object_kind": self.object_kind,
                "object_id": self.object_id,
                "expected": self.expected,
                "end_time": self.end_time,
                "fail_on_missing": self.fail_on_missing,
                "poke_interval": self.poke_interval,
                "exponential_backoff": self.exponential_backoff,
                "max_interval": self.max_interval,
                "wait_log": self.wait_log,
                "hook_params": self.hook_params,
                "scope": self.scope,
            },
        )

    def _interval(self, unmatched_polls: int) -> float:
        if not self.exponential_backoff:
            return self.poke_interval
        return min(self.max_interval, self.poke_interval * 2 ** max(0, unmatched_polls - 1))

    def _prepare_hook(self) -> BaseServiceHook:
        """The hook, built in the poller's worker thread (:func:`triggers.poller.prepare_hook`)."""
        return prepare_hook(self.kind, self.conn_id, self.hook_params)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The one event is yielded after the HTTP session is closed: nothing is left open while the
        # triggerer handles it, and closing the generator afterwards runs no more code.
        try:
            event = await self._wait()
        except InvalidFieldError as err:
            # A bad connection setting: retrying cannot fix it, as on the worker.
            event = _failed(str(err), None, retryable=False)
        except Exception as err:
            event = _failed(f"{type(err).__name__}: {err}", None, retryable=True)
        yield event

    async def _wait(self) -> TriggerEvent:
        unmatched = failures = 0
        last_diff: list[FieldDifference] = []
        wait_log = WaitLog.from_dict(self.wait_log)
        shown_id = shown_value(self.object_id)
        # Reads go through the loop's shared poller for this connection and kind (triggers.poller).
        async with subscribe(
            self.conn_id,
            self.kind,
            self.kind.object_id(self.object_id),
            prepare_hook=self._prepare_hook,
            hook_params=self.hook_params,
            scope=self.scope,
        ) as subscription:
            assert subscription.poller.settings is not None
            policy = subscription.poller.settings.retry_policy
            interval: float | None = (
                None  # the first read is not held back: the worker's poke was a while ago
            )
            while True:
                delay = self._interval(unmatched + 1)
                left = self.end_time - self._now()
                if left <= 0:
                    return _timed_out(last_diff, wait_log)
                try:
                    current = await read_object(subscription, self.expected, timeout=left, interval=interval)
                except asyncio.TimeoutError:
                    return _timed_out(last_diff, wait_log)
                except ApiRequestError as err:
                    if err.http_status == 404 and not self.fail_on_missing:
                        wait_log.saw_missing()
                        self.log.info("%s %s not found yet; waiting.", self.kind.noun.capitalize(), shown_id)
                    elif not err.retryable:
                        return _failed(str(err), err.http_status, retryable=False)
                    else:
                        wait_log.failed(str(err))
                        failures += 1
                        delay = max(delay, policy.delay(failures, err.retry_after))
                        self.log.warning("%s; polling again in %.1f s", err, delay)
                else:
                    failures = 0
                    found = self.kind.state_differences(current, self.expected)
                    if not found:
                        # Events are stored in the metadata DB: secrets never travel in them.
                        success: SuccessEvent = {"status": SUCCESS, "object": redact(current)}
                        return TriggerEvent(success)
                    wait_log.saw(found)
                    unmatched += 1
                    last_diff = [d.as_dict() for d in found]
                    self.log.info(
                        "Still waiting on %s", shown_value(", ".join(d["field"] for d in last_diff))
                    )
                remaining = self.end_time - self._now()
                if remaining < delay:
                    # No poll squeezed in before the deadline: polls stay at least `delay` apart.
                    await self._sleep(max(0.0, remaining))
                    return _timed_out(last_diff, wait_log)
                await self._sleep(delay)
                interval = delay


def _timed_out(last_diff: list[FieldDifference], wait_log: WaitLog) -> TriggerEvent:
    event: TimeoutEvent = {"status": TIMEOUT, "diff": last_diff, "wait_log": wait_log.as_dict()}
    return TriggerEvent(event)


def _failed(message: str, http_status: int | None, *, retryable: bool) -> TriggerEvent:
    event: FailedEvent = {
        "status": FAILED,
        "message": message,
        "http_status": http_status,
        "retryable": retryable,
    }
    return TriggerEvent(event)
