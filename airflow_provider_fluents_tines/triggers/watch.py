"""
The event trigger of asset watchers: fire when a watched object changes outside the pipeline.

``ObjectChangeTrigger`` is a ``BaseEventTrigger`` (``AssetWatcher`` accepts only those): it polls
one Fluents action or number or Tines action, or every action of a Tines story, through the
triggerer's shared poller and request budget (:mod:`triggers.poller`), and yields one event per
poll that saw a change in the watched fields. What it saw last is kept as digests (never values)
in Airflow 3.3's asset state store where it runs, so a change made while no triggerer ran is
reported at the first poll after; elsewhere it is kept in memory, and such a change is missed. On
Airflow 3.3 identical watchers share one poll loop (a shared stream).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.exceptions import ApiRequestError
from airflow_provider_fluents_tines.hooks.settings import check_hook_params
from airflow_provider_fluents_tines.objects import KINDS, TINES_ACTION
from airflow_provider_fluents_tines.redaction import redact, shown_value
from airflow_provider_fluents_tines.triggers.poller import gather_seconds, subscribe

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.base import BaseServiceHook

log = logging.getLogger(__name__)

#: The asset state store's key for what a watcher saw last.
STATE_KEY = "fluents_tines_last_seen"
#: Hex digits kept of each field's digest: change detection, not integrity.
_DIGEST_CHARS = 16


class ObjectChangeTrigger(BaseEventTrigger):
    """
    Poll a watched object (or a Tines story's actions) every ``poll_interval`` seconds and yield
    ``{"conn_id", "object_kind", "object_id", "story_id", "changes": [{"object_id", "change",
    "fields"}], "objects": {id: object}}`` when it changed: ``change`` is ``changed`` (``fields``
    names the watched fields that differ), ``created`` or ``deleted``; ``objects`` holds each changed
    object as read, secrets starred. The first poll with nothing stored only records the state.

    Its kwargs are the watcher's identity (Airflow matches watchers by them) and are **not
    templated**: give literal values. Errors (a 5xx, a 429, the budget) are logged and polled
    through with the connection's backoff; the watcher does not end on them.

    :param conn_id: the connection id.
    :param object_kind: ``"fluents.action"``, ``"fluents.number"`` or ``"tines.action"``.
    :param object_id: the watched object's id (a phone number for Fluents numbers).
    :param story_id: instead of ``object_id`` (Tines only): watch every action of the story,
        including actions added or removed.
    :param fields: the top-level fields to watch; default: every field the kind does not list as
        volatile (``ObjectKind.volatile_fields``: timestamps, counters, memory).
    :param poll_interval: seconds between polls.
    :param hook_params: hook settings (``timeout``, ``max_attempts``, ``max_retry_wait``,
        ``retry_policy``); numbers only.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        object_kind: str,
        object_id: Any = None,
        story_id: Any = None,
        fields: list[str] | None = None,
        poll_interval: float = 60.0,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # Checked where the watcher is declared (DAG parsing), not later in the triggerer.
        if not isinstance(conn_id, str) or not conn_id:
            raise validation.invalid("conn_id", "must be a non-empty connection id")
        if object_kind not in KINDS:
            raise validation.invalid("object_kind", f"must be one of {sorted(KINDS)}, got {object_kind!r}")
        kind = KINDS[object_kind]
        if (object_id is None) == (story_id is None):
            raise validation.invalid("object_id", "give exactly one of object_id and story_id")
        if story_id is not None:
            if kind is not TINES_ACTION:
                raise validation.invalid(
                    "story_id", "watches a Tines story: only with object_kind 'tines.action'"
                )
            story_id = validation.tines_action_id(story_id, "story_id")
        else:
            object_id = kind.object_id(object_id)
        if fields is not None and (
            not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields)
        ):
            raise validation.invalid("fields", "must be a non-empty list of field names, or None for all")
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or poll_interval <= 0
        ):
            raise validation.invalid(
                "poll_interval", f"must be a positive number of seconds, got {poll_interval!r}"
            )
        self.conn_id = conn_id
        self.object_kind = object_kind
        self.kind = kind
        self.object_id = object_id
        self.story_id = story_id
        self.fields = fields
        self.poll_interval = float(poll_interval)
        self.hook_params = check_hook_params(hook_params) or None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "object_kind": self.object_kind,
                "object_id": self.object_id,
                "story_id": self.story_id,
                "fields": self.fields,
                "poll_interval": self.poll_interval,
                "hook_params": self.hook_params,
            },
        )

    # ---- Airflow 3.3 shared streams: identical watchers (fields aside) share one poll ---------------

    def shared_stream_key(self) -> Hashable | None:
        return (
            "airflow_provider_fluents_tines.watch",
            self.conn_id,
            self.object_kind,
            json.dumps(self.object_id),
            json.dumps(self.story_id),
            self.poll_interval,
            json.dumps(self.hook_params or {}, sort_keys=True),
        )

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        async for snapshot in cls(**kwargs)._snapshots():
            yield snapshot

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for event in self._changes(shared_stream):
            yield event

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in self._changes(self._snapshots()):
            yield event

    # ---- polling ---------------------------------------------------------------------------------

    def _prepare_hook(self) -> BaseServiceHook:
        import aiohttp  # noqa: F401  (so that no poll imports it on the event loop)

        hook = self.kind.hook_class().from_hook_params(self.conn_id, self.hook_params)
        _ = hook.settings
        return hook

    async def _snapshots(self) -> AsyncIterator[dict[str, Any]]:
        """
        Every poll's result, for ever: ``{"objects": {str(id): object}}`` (a missing single object:
        empty) or ``{"error": message}``.
        """
        failures = 0
        async with subscribe(
            self.conn_id,
            self.kind,
            self.object_id,
            prepare_hook=self._prepare_hook,
            hook_params=self.hook_params,
            scope=self.story_id,
            whole_scope=self.story_id is not None,
        ) as subscription:
            assert subscription.poller.settings is not None
            policy = subscription.poller.settings.retry_policy
            gather = 0.0
            while True:
                delay = self.poll_interval
                try:
                    reading = await subscription.read(timeout=self.poll_interval * 2 + 60, gather=gather)
                except (ApiRequestError, asyncio.TimeoutError) as err:
                    if isinstance(err, ApiRequestError) and err.http_status == 404 and self.story_id is None:
                        failures = 0
                        yield {"objects": {}}
                    else:
                        failures += 1
                        retry_after = err.retry_after if isinstance(err, ApiRequestError) else None
                        delay = max(delay, policy.delay(failures, retry_after))
                        yield {"error": str(err) or type(err).__name__}
                else:
                    failures = 0
                    if reading.objects is not None:
                        yield {"objects": {str(key): obj for key, obj in reading.objects.items()}}
                    else:
                        yield {"objects": {str(self.object_id): reading.object}}
                await asyncio.sleep(delay)
                gather = gather_seconds(self.poll_interval)

    # ---- what changed ----------------------------------------------------------------------------

    async def _changes(self, snapshots: AsyncIterator[dict[str, Any]]) -> AsyncIterator[TriggerEvent]:
        seen = await self._load()
        async for snapshot in snapshots:
            if "error" in snapshot:
                log.warning("Watching %s: %s; polling again.", self._shown(), snapshot["error"])
                continue
            objects: dict[str, Any] = snapshot["objects"]
            digests = {key: self._digests(obj) for key, obj in objects.items()}
            if seen is None:
                seen = digests  # the first state seen: nothing to compare it with
                await self._save(seen)
                continue
            changes = []
            for key in sorted(seen.keys() | digests.keys()):
                before, now = seen.get(key), digests.get(key)
                if before == now:
                    continue
                if before is None:
                    changes.append({"object_id": key, "change": "created", "fields": sorted(now or {})})
                elif now is None:
                    changes.append({"object_id": key, "change": "deleted", "fields": sorted(before)})
                else:
                    differing = sorted(
                        name for name in before.keys() | now.keys() if before.get(name) != now.get(name)
                    )
                    changes.append({"object_id": key, "change": "changed", "fields": differing})
            seen = digests
            if not changes:
                continue
            log.info("Watching %s: %s", self._shown(), shown_value(changes)[:500])
            yield TriggerEvent(
                {
                    "conn_id": self.conn_id,
                    "object_kind": self.object_kind,
                    "object_id": self.object_id,
                    "story_id": self.story_id,
                    "changes": changes,
                    # Asset events are stored in the metadata DB: secrets never travel in them.
                    "objects": {
                        change["object_id"]: redact(objects[change["object_id"]])
                        for change in changes
                        if change["object_id"] in objects
                    },
                }
            )
            # Saved after the event is handed over: a crash in between reports the change again
            # after a restart rather than never.
            await self._save(seen)

    def _watched(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        normalized = self.kind.normalize(obj)
        if self.fields is not None:
            return {name: normalized.get(name) for name in self.fields}
        return {name: value for name, value in normalized.items() if name not in self.kind.volatile_fields}

    def _digests(self, obj: Mapping[str, Any]) -> dict[str, str]:
        """Each watched field's keyed digest: what is stored, so that no value is."""
        key = _digest_key()
        return {
            name: hmac.new(
                key, json.dumps(value, sort_keys=True, default=str).encode(), hashlib.sha256
            ).hexdigest()[:_DIGEST_CHARS]
            for name, value in self._watched(obj).items()
        }

    def _shown(self) -> str:
        if self.story_id is not None:
            return f"Tines story {self.story_id}"
        return f"{self.kind.service} {self.kind.noun} {shown_value(self.object_id)}"

    # ---- the asset state store (Airflow 3.3) ---------------------------------------------------------

    async def _load(self) -> dict[str, dict[str, str]] | None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return None
        try:
            stored = await store.aget(STATE_KEY)
        except Exception as err:  # a watcher of several assets, or a store that fails: memory only
            log.warning(
                "Watching %s: the asset state store cannot be read (%s); keeping state in memory.",
                self._shown(),
                err,
            )
            self.asset_state_store = None
            return None
        if not isinstance(stored, dict) or stored.get("key_id") != _digest_key_id():
            return None  # none yet, or digests made with another key: start afresh
        seen = stored.get("objects")
        return seen if isinstance(seen, dict) else None

    async def _save(self, seen: dict[str, dict[str, str]]) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return
        try:
            await store.aset(STATE_KEY, {"key_id": _digest_key_id(), "objects": seen})
        except Exception as err:
            log.warning("Watching %s: the asset state store cannot be written (%s).", self._shown(), err)


def _digest_key() -> bytes:
    """
    The key of the field digests: derived from Airflow's Fernet key where one is set, so that a
    digest of a short secret cannot be guessed from the metadata DB alone; a fixed one otherwise.
    """
    from airflow_provider_fluents_tines.version_compat import conf

    fernet_key = (conf.get("core", "fernet_key", fallback="") or "").split(",")[0].strip()
    return hashlib.sha256(b"airflow-provider-fluents-tines/watch:" + fernet_key.encode()).digest()


def _digest_key_id() -> str:
    """Names the digest key without revealing it: stored digests made with another key are not compared."""
    return hashlib.sha256(b"id:" + _digest_key()).hexdigest()[:12]
