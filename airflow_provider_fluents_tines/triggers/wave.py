"""The trigger of a rollout's verification: poll a wave's objects until each shows its desired state."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_fluents_tines.exceptions import (
    ApiRequestError,
    InvalidFieldError,
    InvalidTriggerArgument,
)
from airflow_provider_fluents_tines.hooks.settings import check_hook_params
from airflow_provider_fluents_tines.objects import KINDS
from airflow_provider_fluents_tines.redaction import shown_value
from airflow_provider_fluents_tines.triggers.events import FAILED, SUCCESS, TIMEOUT
from airflow_provider_fluents_tines.triggers.poller import (
    Subscription,
    prepare_hook,
    read_object,
    subscribe,
)

if TYPE_CHECKING:
    pass


class WaveStateTrigger(BaseTrigger):
    """
    Poll every object of a wave with GET, each until it shows its expected fields (the sensors'
    partial match), then yield one event: ``{"status": "success"}``, ``{"status": "timeout",
    "pending": {key: [FieldDifference...]}}`` or ``{"status": "failed", "message", "retryable"}``.

    Each round reads only the objects not yet matched, through the triggerer's shared poller
    (:mod:`triggers.poller`: a story's list page when that takes fewer requests) and the request
    budget, so a wave of Tines actions never polls faster than the key's limit; rounds are
    ``poke_interval`` apart. Its kwargs hold ids and expected values with secrets left out, never the API key.

    :param objects: ``[{"key", "conn_id", "object_kind", "object_id", "expected"}]``, each with an
        optional ``scope`` (a Tines action's ``story_id``, for shared reads from the first round).
    :param end_time: the epoch second at which to give up with ``timeout``.
    :param poke_interval: seconds between rounds.
    :param hook_params: the task's hook settings (numbers only).
    """

    _now: Callable[[], float] = staticmethod(time.time)
    _sleep: Callable[[float], Awaitable[None]] = staticmethod(asyncio.sleep)

    def __init__(
        self,
        *,
        objects: list[dict[str, Any]],
        end_time: float,
        poke_interval: float = 60.0,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for entry in objects:  # fails in the task that defers, not later in the triggerer
            if entry.get("object_kind") not in KINDS:
                raise InvalidTriggerArgument(
                    "objects.object_kind", f"must be one of {sorted(KINDS)}, got {entry.get('object_kind')!r}"
                )
        self.objects = objects
        self.end_time = end_time
        self.poke_interval = poke_interval
        self.hook_params = check_hook_params(hook_params) or None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "objects": self.objects,
                "end_time": self.end_time,
                "poke_interval": self.poke_interval,
                "hook_params": self.hook_params,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._wait()
        except InvalidFieldError as err:
            event = {"status": FAILED, "message": str(err), "retryable": False}
        except Exception as err:
            event = {"status": FAILED, "message": f"{type(err).__name__}: {err}", "retryable": True}
        yield TriggerEvent(event)

    async def _wait(self) -> dict[str, Any]:
        pending = {entry["key"]: entry for entry in self.objects}
        last: dict[str, list[Any]] = {key: [] for key in pending}
        interval: float | None = None  # the first round is read at once
        # One subscription per object, through the loop's shared poller of its connection and kind;
        # each ends when its object matches, so the others of its scope are not held back by it.
        subscriptions: dict[str, Subscription] = {}
        stacks: dict[str, AsyncExitStack] = {}
        try:
            for key, entry in pending.items():
                kind = KINDS[entry["object_kind"]]
                stacks[key] = AsyncExitStack()
                subscriptions[key] = await stacks[key].enter_async_context(
                    subscribe(
                        entry["conn_id"],
                        kind,
                        kind.object_id(entry["object_id"]),
                        prepare_hook=functools.partial(
                            prepare_hook, kind, entry["conn_id"], self.hook_params
                        ),
                        hook_params=self.hook_params,
                        scope=entry.get("scope"),
                    )
                )
            while pending:
                left = self.end_time - self._now()
                if left <= 0:
                    break
                keys = list(pending)
                readings = await asyncio.gather(
                    *(
                        read_object(
                            subscriptions[key], pending[key]["expected"], timeout=left, interval=interval
                        )
                        for key in keys
                    ),
                    return_exceptions=True,
                )
                for key, reading in zip(keys, readings, strict=True):
                    entry = pending[key]
                    kind = KINDS[entry["object_kind"]]
                    if isinstance(reading, asyncio.TimeoutError):
                        continue
                    if isinstance(reading, ApiRequestError):
                        if not reading.retryable and reading.http_status != 404:
                            return {"status": FAILED, "message": str(reading), "retryable": False}
                        last[key] = [{"field": "(read)", "current": str(reading), "requested": None}]
                        self.log.warning("%s; reading it again next round.", reading)
                        continue
                    if isinstance(reading, BaseException):
                        raise reading
                    found = kind.state_differences(reading, entry["expected"])
                    if found:
                        last[key] = [difference.as_dict() for difference in found]
                    else:
                        del pending[key]
                        await stacks.pop(key).aclose()
                        self.log.info(
                            "%s %s shows its desired state.",
                            kind.noun.capitalize(),
                            shown_value(entry["object_id"]),
                        )
                if not pending:
                    break
                remaining = self.end_time - self._now()
                if remaining < self.poke_interval:
                    await self._sleep(max(0.0, remaining))
                    return {"status": TIMEOUT, "pending": {key: last[key] for key in pending}}
                self.log.info(
                    "Still waiting on %d object(s): %s", len(pending), ", ".join(sorted(pending))[:500]
                )
                await self._sleep(self.poke_interval)
                interval = self.poke_interval
        finally:
            for stack in stacks.values():
                await stack.aclose()
        if pending:
            return {"status": TIMEOUT, "pending": {key: last[key] for key in pending}}
        return {"status": SUCCESS}
