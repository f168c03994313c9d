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
from asgiref.sync import sync_to_async

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.exceptions import (
    ApiRequestError,
    InvalidFieldError,
    InvalidTriggerArgument,
)
from airflow_provider_fluents_tines.hooks.settings import check_hook_params
from airflow_provider_fluents_tines.objects import KINDS, TINES_ACTION
from airflow_provider_fluents_tines.redaction import digest_key, redact, shown_value
from airflow_provider_fluents_tines.triggers.poller import prepare_hook, subscribe

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.base import BaseServiceHook

log = logging.getLogger(__name__)

#: The asset state store's key for what a watcher saw last.
STATE_KEY = "fluents_tines_last_seen"
#: Hex digits kept of each field's digest: change detection, not integrity.
_DIGEST_CHARS = 16
#: Objects an event carries at most (a story watcher's changes are all listed in ``changes``).
MAX_EVENT_OBJECTS = 50
#: The longest wait before a watcher tries again after an error outside a read.
_MAX_BACKOFF_SECONDS = 600.0


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
        # Checked where the watcher is declared (DAG parsing). An InvalidTriggerArgument is also a
        # TypeError, which is what the triggerer expects of kwargs it cannot build a trigger from.
        try:
            object_id, story_id = self._checked(
                conn_id, object_kind, object_id, story_id, fields, poll_interval
            )
        except InvalidFieldError as err:
            raise InvalidTriggerArgument(err.field, err.rule) from None
        kind = KINDS[object_kind]
        self.conn_id = conn_id
        self.object_kind = object_kind
        self.kind = kind
        self.object_id = object_id
        self.story_id = story_id
        self.fields = fields
        self.poll_interval = float(poll_interval)
        self.hook_params = check_hook_params(hook_params) or None
        self._key, self._key_id = b"", ""  # the digest key, read when the watch starts

    @staticmethod
    def _checked(
        conn_id: Any, object_kind: Any, object_id: Any, story_id: Any, fields: Any, poll_interval: Any
    ) -> tuple[Any, Any]:
        """The arguments' rules; the object or story id as the API takes it."""
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
        return object_id, story_id

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
        return prepare_hook(self.kind, self.conn_id, self.hook_params)

    async def _snapshots(self) -> AsyncIterator[dict[str, Any]]:
        """
        Every poll's result, for ever: ``{"objects": {str(id): object}}`` (a missing single object:
        empty) or ``{"error": message}``. No error ends it: a connection that cannot be read, a
        poller that cannot open, a failed read are reported and tried again after a backoff.
        """
        failures = 0
        while True:
            try:
                async for snapshot in self._poll():
                    failures = 0 if "objects" in snapshot else failures
                    yield snapshot
            except Exception as err:  # before or between polls: the connection, the poller
                failures += 1
                yield {"error": f"{type(err).__name__}: {err}"}
                await asyncio.sleep(min(self.poll_interval * 2 ** min(failures - 1, 6), _MAX_BACKOFF_SECONDS))

    async def _poll(self) -> AsyncIterator[dict[str, Any]]:
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
            # A list item of a kind whose list shape is not a GET's would show fields coming and going.
            single = self.story_id is None and not self.kind.list_item_is_full
            interval: float | None = None  # the first poll is made at once
            while True:
                delay = self.poll_interval
                try:
                    reading = await subscription.read(
                        timeout=self.poll_interval * 2 + 60, interval=interval, single=single
                    )
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
                interval = self.poll_interval

    # ---- what changed ----------------------------------------------------------------------------

    async def _changes(self, snapshots: AsyncIterator[dict[str, Any]]) -> AsyncIterator[TriggerEvent]:
        # Config reads may run a command or a secrets backend: in a thread, once per trigger.
        self._key, self._key_id = await sync_to_async(_digest_key)()
        seen = await self._load()
        unsaved = False
        async for snapshot in snapshots:
            if unsaved:
                # Saved once the next poll is in, after the event was handed over: a crash in
                # between reports the change again after a restart rather than never.
                unsaved = not await self._save(seen)
            if "error" in snapshot:
                log.warning("Watching %s: %s; polling again.", self._shown(), snapshot["error"])
                continue
            objects: dict[str, Any] = snapshot["objects"]
            digests = {key: self._digests(obj) for key, obj in objects.items()}
            if seen is None:
                seen = digests  # the first state seen: nothing to compare it with
                await self._save(seen)
                continue
            changes = _changes_between(seen, digests)
            seen = digests
            if not changes:
                continue
            log.info("Watching %s: %s", self._shown(), shown_value(changes)[:500])
            shown = [change["object_id"] for change in changes if change["object_id"] in objects]
            yield TriggerEvent(
                {
                    "conn_id": self.conn_id,
                    "object_kind": self.object_kind,
                    "object_id": self.object_id,
                    "story_id": self.story_id,
                    "changes": changes,
                    # Asset events are stored in the metadata DB: secrets starred, volatile fields
                    # left out, and at most MAX_EVENT_OBJECTS objects.
                    "objects": {key: self._shown_object(objects[key]) for key in shown[:MAX_EVENT_OBJECTS]},
                }
            )
            unsaved = True

    def _shown_object(self, obj: Mapping[str, Any]) -> Any:
        return redact({name: value for name, value in obj.items() if name not in self.kind.volatile_fields})

    def _watched(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        normalized = self.kind.normalize(obj)
        if self.fields is not None:
            return {name: normalized.get(name) for name in self.fields}
        return {name: value for name, value in normalized.items() if name not in self.kind.volatile_fields}

    def _digests(self, obj: Mapping[str, Any]) -> dict[str, str]:
        """Each watched field's keyed digest: what is stored, so that no value is."""
        key = self._key
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

    def _state_key(self) -> str:
        """
        The store key of this watcher: its identity (what it watches and how), so that several
        watchers of one asset, or a watcher whose fields changed, never read each other's state.
        """
        identity = json.dumps([self.conn_id, self.object_kind, self.object_id, self.story_id, self.fields])
        return f"{STATE_KEY}:{hashlib.sha256(identity.encode()).hexdigest()[:16]}"

    async def _load(self) -> dict[str, dict[str, str]] | None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return None
        try:
            stored = await store.aget(self._state_key())
        except ValueError as err:  # a watcher of several assets has no single store
            log.warning("Watching %s: %s; keeping what it saw in memory only.", self._shown(), err)
            self.asset_state_store = None
            return None
        except Exception as err:
            log.warning("Watching %s: the asset state store cannot be read (%s).", self._shown(), err)
            return None
        if not isinstance(stored, dict) or stored.get("key_id") != self._key_id:
            return None  # none yet, or digests made with another key: start afresh
        seen = stored.get("objects")
        return seen if isinstance(seen, dict) else None

    async def _save(self, seen: dict[str, dict[str, str]] | None) -> bool:
        """Store what was seen; True when stored (or there is no store)."""
        store = getattr(self, "asset_state_store", None)
        if store is None or seen is None:
            return True
        try:
            await store.aset(self._state_key(), {"key_id": self._key_id, "objects": seen})
        except Exception as err:
            log.warning("Watching %s: the asset state store cannot be written (%s).", self._shown(), err)
            return False
        return True


def _changes_between(seen: dict[str, dict[str, str]], now: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Objects created, deleted or changed (in which fields) from ``seen`` to ``now``."""
    changes: list[dict[str, Any]] = []
    for key in sorted(seen.keys() | now.keys()):
        before, after = seen.get(key), now.get(key)
        if before == after:
            continue
        if before is None:
            changes.append({"object_id": key, "change": "created", "fields": sorted(after or {})})
        elif after is None:
            changes.append({"object_id": key, "change": "deleted", "fields": sorted(before)})
        else:
            fields = sorted(
                name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
            )
            changes.append({"object_id": key, "change": "changed", "fields": fields})
    return changes


def _digest_key() -> tuple[bytes, str]:
    """
    The key of the field digests and its id (which names it without revealing it: digests made
    with another key are not compared). Derived from Airflow's Fernet key where one is set, so that
    a digest of a short secret cannot be guessed from the metadata DB alone; a fixed one otherwise.
    Blocking (a ``fernet_key_cmd`` runs a command): call it in a thread.
    """
    key = digest_key("watch")
    return key, hashlib.sha256(b"id:" + key).hexdigest()[:12]
