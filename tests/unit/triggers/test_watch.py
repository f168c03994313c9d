"""
The asset watcher's event trigger on a fake hook (no sockets): what it checks when the watcher is
declared, which changes fire and which do not, a story's added and removed actions, the state kept
in the asset state store across a restart (digests, never values), and the shared stream's key.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any

import pytest

from airflow_provider_fluents_tines.exceptions import ApiRequestError, InvalidFieldError
from airflow_provider_fluents_tines.hooks.base import ApiSettings, RetryPolicy
from airflow_provider_fluents_tines.objects import ListPage
from airflow_provider_fluents_tines.triggers.watch import STATE_KEY, ObjectChangeTrigger

INTERVAL = 0.02


class Tenant:
    """Tines actions in memory that a test changes between polls; a fake hook reads them."""

    def __init__(self) -> None:
        self.actions: dict[int, dict[str, Any]] = {
            1: {"id": 1, "story_id": 10, "name": "Escalate", "disabled": False, "updated_at": "t0"},
            2: {
                "id": 2,
                "story_id": 10,
                "name": "Notify",
                "disabled": False,
                "options": {"password": "hunter2"},
            },
        }
        self.failing: ApiRequestError | None = None
        self.reads = 0

    def hook(self) -> Any:
        tenant = self

        class FakeHook:
            settings = ApiSettings(
                base_url="https://t.example",
                api_key="k" * 12,
                timeout=5.0,
                retry_policy=RetryPolicy(backoff_max=0.05),
            )

            @asynccontextmanager
            async def async_session(self, settings):
                yield object()

            async def aget_object(self, session, settings, kind, object_id, *, timeout=None):
                tenant.reads += 1
                if tenant.failing is not None:
                    raise tenant.failing
                if object_id not in tenant.actions:
                    raise _error(404, retryable=False)
                return json.loads(json.dumps(tenant.actions[object_id]))

            async def alist_page(self, session, settings, kind, scope, page, *, timeout=None):
                tenant.reads += 1
                if tenant.failing is not None:
                    raise tenant.failing
                items = [json.loads(json.dumps(a)) for a in tenant.actions.values() if a["story_id"] == scope]
                return ListPage(items, None, 1)

        return FakeHook()


def _error(status: int | None, *, retryable: bool) -> ApiRequestError:
    return ApiRequestError(
        service="Tines", method="GET", path="/x", http_status=status, api_message="boom", retryable=retryable
    )


class FakeStore:
    """The asset state store's async accessors, over a dict that outlives a trigger (a restart)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values.get(key, default)))

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))


def _watch(tenant: Tenant, steps: list[Any], *, store: FakeStore | None = None, **kwargs: Any) -> list[dict]:
    """
    Run a watcher; after each poll, apply the next step (a callable changing the tenant) and
    collect the events, until the steps run out.
    """
    kwargs = {"conn_id": "tines_default", "object_kind": "tines.action", "poll_interval": INTERVAL, **kwargs}
    trigger = ObjectChangeTrigger(**kwargs)
    trigger._prepare_hook = tenant.hook  # type: ignore[method-assign]
    trigger.asset_state_store = store

    async def main() -> list[dict]:
        events: list[dict] = []

        async def collect() -> None:
            async for event in trigger.run():
                events.append(event.payload)

        task = asyncio.create_task(collect())
        for step in steps:
            reads = tenant.reads
            while tenant.reads < reads + 2:  # a poll after the last step has been made
                await asyncio.sleep(INTERVAL / 4)
            step()
        reads = tenant.reads
        while tenant.reads < reads + 2:
            await asyncio.sleep(INTERVAL / 4)
        task.cancel()
        return events

    return asyncio.run(asyncio.wait_for(main(), 10))


def test_a_watcher_is_checked_where_it_is_declared():
    for kwargs, field in [
        ({}, "object_id"),
        ({"object_id": 1, "story_id": 10}, "object_id"),
        ({"story_id": 10, "object_kind": "fluents.number"}, "story_id"),
        ({"object_id": "x"}, "action_id"),
        ({"object_id": 1, "fields": []}, "fields"),
        ({"object_id": 1, "fields": "disabled"}, "fields"),
        ({"object_id": 1, "poll_interval": 0}, "poll_interval"),
        ({"object_id": 1, "object_kind": "tines.story"}, "object_kind"),
    ]:
        with pytest.raises(InvalidFieldError) as raised:
            ObjectChangeTrigger(**{"conn_id": "c", "object_kind": "tines.action", **kwargs})
        assert raised.value.field == field, kwargs


def test_a_change_in_a_watched_field_fires_once_and_volatile_fields_do_not():
    tenant = Tenant()
    events = _watch(
        tenant,
        [
            lambda: tenant.actions[1].update(updated_at="t1"),  # volatile: nothing
            lambda: tenant.actions[1].update(disabled=True),
            lambda: None,  # no change: no second event
        ],
        object_id=1,
    )
    assert [e["changes"] for e in events] == [
        [{"object_id": "1", "change": "changed", "fields": ["disabled"]}]
    ]
    assert events[0]["objects"]["1"]["disabled"] is True


def test_a_watcher_of_named_fields_ignores_the_others():
    tenant = Tenant()
    events = _watch(
        tenant,
        [lambda: tenant.actions[1].update(disabled=True), lambda: tenant.actions[1].update(name="Page")],
        object_id=1,
        fields=["name"],
    )
    assert [e["changes"][0]["fields"] for e in events] == [["name"]]


def test_a_deleted_and_recreated_object_fires_each_time():
    tenant = Tenant()
    kept = tenant.actions[1]
    events = _watch(
        tenant, [lambda: tenant.actions.pop(1), lambda: tenant.actions.__setitem__(1, kept)], object_id=1
    )
    assert [e["changes"][0]["change"] for e in events] == ["deleted", "created"]


def test_a_story_watcher_sees_actions_added_removed_and_changed_in_one_event_per_poll():
    tenant = Tenant()

    def several() -> None:
        tenant.actions[3] = {"id": 3, "story_id": 10, "name": "New", "disabled": False}
        tenant.actions.pop(2)
        tenant.actions[1]["name"] = "Escalate now"

    events = _watch(tenant, [several], story_id=10)
    assert len(events) == 1
    assert events[0]["changes"] == [
        {"object_id": "1", "change": "changed", "fields": ["name"]},
        {"object_id": "2", "change": "deleted", "fields": ["disabled", "id", "name", "options", "story_id"]},
        {"object_id": "3", "change": "created", "fields": ["disabled", "id", "name", "story_id"]},
    ]
    assert sorted(events[0]["objects"]) == ["1", "3"]


def test_errors_are_polled_through_without_an_event():
    tenant = Tenant()

    def fail() -> None:
        tenant.failing = _error(503, retryable=True)

    def recover() -> None:
        tenant.failing = None
        tenant.actions[1]["disabled"] = True

    events = _watch(tenant, [fail, recover], object_id=1)
    assert [e["changes"][0]["fields"] for e in events] == [["disabled"]]


def test_the_state_survives_a_restart_in_the_asset_state_store_as_digests_only():
    tenant, store = Tenant(), FakeStore()
    assert _watch(tenant, [], store=store, story_id=10) == []  # the first run records the state
    [key] = store.values  # one key, named after the watcher's identity
    assert key.startswith(STATE_KEY + ":")
    stored = json.dumps(store.values[key])
    assert "hunter2" not in stored and "Escalate" not in stored
    # While no triggerer runs: a secret and a name change. The next run reports both at its first poll.
    tenant.actions[2]["options"]["password"] = "correct horse"
    tenant.actions[1]["name"] = "Escalate now"
    events = _watch(tenant, [], store=store, story_id=10)
    assert [c["fields"] for c in events[0]["changes"]] == [["name"], ["options"]]
    assert events[0]["objects"]["2"]["options"]["password"] == "***"  # secrets never travel in events
    # Without a store the same change made while down is not seen: the first poll only records.
    tenant.actions[1]["name"] = "Escalate later"
    assert _watch(tenant, [], story_id=10) == []


def test_watchers_differing_only_in_fields_share_a_stream_and_filter_it_each_their_way():
    by_name = ObjectChangeTrigger(conn_id="c", object_kind="tines.action", object_id=1, fields=["name"])
    by_all = ObjectChangeTrigger(conn_id="c", object_kind="tines.action", object_id=1)
    other = ObjectChangeTrigger(conn_id="c", object_kind="tines.action", object_id=2)
    assert by_name.shared_stream_key() == by_all.shared_stream_key() != other.shared_stream_key()

    async def stream():
        yield {"objects": {"1": {"id": 1, "name": "a", "disabled": False}}}
        yield {"error": "boom"}
        yield {"objects": {"1": {"id": 1, "name": "a", "disabled": True}}}

    async def events(trigger: ObjectChangeTrigger) -> list[dict]:
        return [event.payload async for event in trigger.filter_shared_stream(stream())]

    assert asyncio.run(events(by_name)) == []
    assert [e["changes"][0]["fields"] for e in asyncio.run(events(by_all))] == [["disabled"]]


def test_watchers_of_one_asset_keep_their_states_apart():
    # Two watchers on one asset share its store: neither reads the other's state as its own.
    tenant, store = Tenant(), FakeStore()
    for _ in range(2):
        assert _watch(tenant, [], store=store, object_id=1) == []
        assert _watch(tenant, [], store=store, object_id=2) == []
        assert _watch(tenant, [], store=store, object_id=1, fields=["name"]) == []
    assert len(store.values) == 3


def test_a_connection_that_cannot_be_read_does_not_end_the_watcher():
    tenant = Tenant()
    attempts = []

    def flaky() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("the API server is away")
        return tenant.hook()

    trigger = ObjectChangeTrigger(
        conn_id="tines_default", object_kind="tines.action", object_id=1, poll_interval=INTERVAL
    )
    trigger._prepare_hook = flaky  # type: ignore[method-assign]

    async def main() -> list[dict]:
        events: list[dict] = []

        async def collect() -> None:
            async for event in trigger.run():
                events.append(event.payload)

        task = asyncio.create_task(collect())
        while tenant.reads < 2:  # the watcher came back and polled
            await asyncio.sleep(INTERVAL / 4)
        tenant.actions[1]["disabled"] = True
        reads = tenant.reads
        while tenant.reads < reads + 2:
            await asyncio.sleep(INTERVAL / 4)
        task.cancel()
        return events

    events = asyncio.run(asyncio.wait_for(main(), 10))
    assert len(attempts) == 2
    assert [e["changes"][0]["fields"] for e in events] == [["disabled"]]


def test_a_bad_watcher_argument_is_also_a_type_error_for_the_triggerer():
    with pytest.raises(TypeError, match="poll_interval"):
        ObjectChangeTrigger(conn_id="c", object_kind="tines.action", object_id=1, poll_interval=-1)


def test_events_leave_volatile_fields_out():
    tenant = Tenant()
    events = _watch(tenant, [lambda: tenant.actions[1].update(disabled=True, updated_at="t2")], object_id=1)
    assert "updated_at" not in events[0]["objects"]["1"] and events[0]["objects"]["1"]["disabled"] is True
