"""The trigger of a rollout's verification: poll a wave's objects until each shows its desired state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from airflow_provider_fluents_tines.exceptions import ApiRequestError, InvalidFieldError
from airflow_provider_fluents_tines.hooks.settings import check_hook_params
from airflow_provider_fluents_tines.objects import KINDS
from airflow_provider_fluents_tines.redaction import shown_value
from airflow_provider_fluents_tines.triggers.events import FAILED, SUCCESS, TIMEOUT

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.base import ApiSettings, BaseServiceHook


class WaveStateTrigger(BaseTrigger):
    """
    Poll every object of a wave with GET, each until it shows its expected fields (the sensors'
    partial match), then yield one event: ``{"status": "success"}``, ``{"status": "timeout",
    "pending": {key: [FieldDifference...]}}`` or ``{"status": "failed", "message", "retryable"}``.

    Each round reads only the objects not yet matched, through the hook's request budget, so a
    wave of Tines actions never polls faster than the key's limit; rounds are ``poke_interval``
    apart. Its kwargs hold ids and expected values with secrets left out, never the API key.

    :param objects: ``[{"key", "conn_id", "object_kind", "object_id", "expected"}]``.
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
                raise ValueError(
                    f"object_kind must be one of {sorted(KINDS)}, got {entry.get('object_kind')!r}"
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

    def _prepare_hooks(self) -> dict[tuple[str, str], BaseServiceHook]:
        """The hooks, one per (connection, service), built in a thread: imports and lookups block."""
        import aiohttp  # noqa: F401  (so that no poll imports it on the event loop)

        hooks: dict[tuple[str, str], BaseServiceHook] = {}
        for entry in self.objects:
            kind = KINDS[entry["object_kind"]]
            slot = (entry["conn_id"], kind.service)
            if slot not in hooks:
                hooks[slot] = kind.hook_class().from_hook_params(entry["conn_id"], self.hook_params)
                _ = hooks[slot].settings
        return hooks

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._wait()
        except InvalidFieldError as err:
            event = {"status": FAILED, "message": str(err), "retryable": False}
        except Exception as err:
            event = {"status": FAILED, "message": f"{type(err).__name__}: {err}", "retryable": True}
        yield TriggerEvent(event)

    async def _wait(self) -> dict[str, Any]:
        hooks = await sync_to_async(self._prepare_hooks)()
        pending = {entry["key"]: entry for entry in self.objects}
        last: dict[str, list[Any]] = {key: [] for key in pending}
        async with AsyncExitStack() as stack:
            sessions: dict[tuple[str, str], tuple[Any, ApiSettings]] = {}
            for slot, hook in hooks.items():
                settings = hook.settings
                sessions[slot] = (await stack.enter_async_context(hook.async_session(settings)), settings)
            while pending:
                for key, entry in list(pending.items()):
                    left = self.end_time - self._now()
                    if left <= 0:
                        break
                    kind = KINDS[entry["object_kind"]]
                    slot = (entry["conn_id"], kind.service)
                    session, settings = sessions[slot]
                    try:
                        current = await hooks[slot].aget_object(
                            session, settings, kind, entry["object_id"], timeout=left
                        )
                    except ApiRequestError as err:
                        if not err.retryable and err.http_status != 404:
                            return {"status": FAILED, "message": str(err), "retryable": False}
                        last[key] = [{"field": "(read)", "current": str(err), "requested": None}]
                        self.log.warning("%s; reading it again next round.", err)
                        continue
                    found = kind.state_differences(current, entry["expected"])
                    if found:
                        last[key] = [difference.as_dict() for difference in found]
                    else:
                        del pending[key]
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
        return {"status": SUCCESS}
