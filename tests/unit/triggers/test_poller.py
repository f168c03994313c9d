"""
The shared poller's choices on a fake hook (no sockets): one GET for a lone ask, a list page for
many, where paging stops, what an object missing from a list gets, how list errors reach the
asks, gathering, and the poller's lifetime.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import pytest

from airflow_provider_fluents_tines.exceptions import ApiRequestError
from airflow_provider_fluents_tines.hooks.base import ApiSettings, RetryPolicy
from airflow_provider_fluents_tines.objects import TINES_ACTION, ListPage
from airflow_provider_fluents_tines.triggers.poller import active_pollers, subscribe


def _error(status: int | None, *, retryable: bool) -> ApiRequestError:
    return ApiRequestError(
        service="Tines",
        method="GET",
        path="/api/v1/actions",
        http_status=status,
        api_message="x",
        retryable=retryable,
    )


class FakeHook:
    """A Tines tenant in memory: actions by id with their story, listed ``page_size`` at a time."""

    def __init__(self, actions: dict[int, int], page_size: int = 3) -> None:
        self.actions = {
            action_id: {"id": action_id, "story_id": story} for action_id, story in actions.items()
        }
        self.page_size = page_size
        self.calls: list[tuple[Any, ...]] = []
        self.list_errors: list[ApiRequestError] = []
        self.opened = self.closed = False
        self.settings = ApiSettings(
            base_url="https://t.example", api_key="k" * 12, timeout=5.0, retry_policy=RetryPolicy()
        )

    @asynccontextmanager
    async def async_session(self, settings):
        self.opened = True
        yield object()
        self.closed = True

    async def aget_object(self, session, settings, kind, object_id, *, timeout=None):
        self.calls.append(("get", object_id))
        if object_id not in self.actions:
            raise _error(404, retryable=False)
        return dict(self.actions[object_id])

    async def alist_page(self, session, settings, kind, scope, page, *, timeout=None):
        self.calls.append(("list", scope, page))
        if self.list_errors:
            raise self.list_errors.pop(0)
        items = [a for a in self.actions.values() if scope is None or a["story_id"] == scope]
        pages = max(1, -(-len(items) // self.page_size))
        chunk = items[(page - 1) * self.page_size : page * self.page_size]
        return ListPage([dict(a) for a in chunk], page + 1 if page < pages else None, pages)


def _asks(hook: FakeHook, ids: list[int], *, scope: Any = None, gather: float = 0.0, rounds: int = 1):
    """Subscribe to ``ids`` together and ask for ``rounds`` readings each; returns what each got."""

    async def main() -> list[list[Any]]:
        async def one(object_id: int) -> list[Any]:
            got: list[Any] = []
            async with subscribe(
                "tines_default", TINES_ACTION, object_id, prepare_hook=lambda: hook, scope=scope
            ) as subscription:
                await started.wait()
                for _ in range(rounds):
                    try:
                        got.append(await subscription.read(timeout=5, gather=gather))
                    except ApiRequestError as err:
                        got.append(err)
            return got

        started = asyncio.Event()
        tasks = [asyncio.create_task(one(object_id)) for object_id in ids]
        while sum(len(s) for s in _members()) < len(ids):  # every subscription made before any ask
            await asyncio.sleep(0.001)
        started.set()
        results = await asyncio.gather(*tasks)
        assert active_pollers() == {}  # the last subscription stopped the poller
        return results

    return asyncio.run(main())


def _members() -> list[set[Any]]:
    return [members for poller in active_pollers().values() for members in poller._members.values()]


# story 10: actions 1-7; story 20: actions 21-22
TENANT = {**dict.fromkeys(range(1, 8), 10), 21: 20, 22: 20}


def test_a_lone_ask_is_one_get_of_its_object():
    hook = FakeHook(TENANT)
    [[reading]] = _asks(hook, [3])
    assert reading.object == {"id": 3, "story_id": 10} and not reading.listed
    assert hook.calls == [("get", 3)]
    assert hook.closed


def test_many_asks_of_one_story_are_one_list_read_stopping_once_all_are_found():
    hook = FakeHook(TENANT)
    results = _asks(hook, [1, 2, 3], scope=10)
    assert hook.calls == [("list", 10, 1)]  # page 1 of 3 holds all three: no more pages
    assert [r[0].object["id"] for r in results] == [1, 2, 3]
    assert all(r[0].listed for r in results)


def test_without_a_scope_the_whole_list_is_read_and_each_story_is_learned():
    hook = FakeHook(TENANT, page_size=10)
    results = _asks(hook, [1, 2, 21, 22], rounds=2)
    # Round 1: nothing known, one page of the tenant; round 2: the stories learned, two asks each,
    # one page each (a page costs what a GET costs, so two asks of a one-page story are listed).
    assert hook.calls[0] == ("list", None, 1)
    assert sorted(hook.calls[1:]) == [("list", 10, 1), ("list", 20, 1)]
    assert all(reading.listed for got in results for reading in got)


def test_paging_stops_when_reading_the_rest_one_by_one_is_cheaper():
    # 7 actions of story 10, 3 per page: page 1 holds 1-3. Asks for 1, 6 and 7: after page 1 two
    # are unfound and two pages are left, so those two are read with a GET each.
    hook = FakeHook(TENANT)
    results = _asks(hook, [1, 6, 7], scope=10)
    assert hook.calls[0] == ("list", 10, 1)
    assert sorted(hook.calls[1:]) == [("get", 6), ("get", 7)]
    assert [r[0].listed for r in results] == [True, False, False]


def test_once_a_list_is_known_to_have_many_pages_few_asks_are_gets():
    hook = FakeHook(TENANT, page_size=2)  # story 10 has 4 pages
    _asks(hook, [1, 2, 7], scope=10, rounds=2)
    second_round = hook.calls[hook.calls.index(("list", 10, 1)) + 1 :]
    assert ("list", 10, 1) not in second_round[1:]
    assert sorted(c for c in hook.calls[-3:]) == [("get", 1), ("get", 2), ("get", 7)]


def test_an_object_missing_from_the_whole_list_gets_its_own_get_and_its_404():
    hook = FakeHook(TENANT, page_size=10)
    results = _asks(hook, [1, 2, 99], scope=10)
    assert hook.calls == [("list", 10, 1), ("get", 99)]
    assert isinstance(results[2][0], ApiRequestError) and results[2][0].http_status == 404
    assert results[0][0].object["id"] == 1


def test_a_retryable_list_error_reaches_every_ask_and_no_get_is_sent():
    hook = FakeHook(TENANT)
    hook.list_errors = [_error(503, retryable=True)]
    results = _asks(hook, [1, 2, 3], scope=10)
    assert hook.calls == [("list", 10, 1)]
    assert all(isinstance(r[0], ApiRequestError) and r[0].http_status == 503 for r in results)


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_list_endpoint_that_refuses_the_request_turns_bulk_reads_off(status):
    hook = FakeHook(TENANT)
    hook.list_errors = [_error(status, retryable=False)]
    results = _asks(hook, [1, 2, 3], scope=10, rounds=2)
    assert hook.calls[0] == ("list", 10, 1)
    assert [c[0] for c in hook.calls[1:]] == ["get"] * 6  # both rounds, one GET each
    assert all(r.object is not None for got in results for r in got)


def test_an_ask_waits_its_gather_time_for_the_scope_s_other_subscribers():
    hook = FakeHook(TENANT)

    async def main() -> tuple[float, list[Any]]:
        loop = asyncio.get_running_loop()
        async with (
            subscribe("tines_default", TINES_ACTION, 1, prepare_hook=lambda: hook, scope=10) as first,
            subscribe("tines_default", TINES_ACTION, 2, prepare_hook=lambda: hook, scope=10) as second,
        ):
            started = loop.time()
            lone = await first.read(timeout=5, gather=0.3)  # the second never asks: read alone
            waited = loop.time() - started
            together = await asyncio.gather(
                first.read(timeout=5, gather=5), second.read(timeout=5, gather=5)
            )  # both ask: read at once, in one list read
            return waited, [lone, *together]

    waited, readings = asyncio.run(main())
    assert 0.25 <= waited < 2
    assert hook.calls == [("get", 1), ("list", 10, 1)]
    assert [r.object["id"] for r in readings] == [1, 1, 2]


def test_a_subscriber_leaving_lets_the_others_be_read_at_once():
    hook = FakeHook(TENANT)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        async with subscribe("tines_default", TINES_ACTION, 1, prepare_hook=lambda: hook, scope=10) as first:
            leaving = subscribe("tines_default", TINES_ACTION, 2, prepare_hook=lambda: hook, scope=10)
            await leaving.__aenter__()
            started = loop.time()
            ask = asyncio.create_task(first.read(timeout=30, gather=30))
            await asyncio.sleep(0.05)
            await leaving.__aexit__(None, None, None)
            await ask
            return loop.time() - started

    assert asyncio.run(main()) < 5


def test_a_cancelled_ask_is_not_read_and_a_timed_out_one_raises():
    hook = FakeHook(TENANT)

    async def main() -> None:
        async with (
            subscribe("tines_default", TINES_ACTION, 1, prepare_hook=lambda: hook, scope=10) as first,
            subscribe("tines_default", TINES_ACTION, 2, prepare_hook=lambda: hook, scope=10),
        ):
            with pytest.raises(asyncio.TimeoutError):
                await first.read(timeout=0.1, gather=30)  # the other never asks; the deadline comes first
            await asyncio.sleep(0.05)
        assert active_pollers() == {}

    asyncio.run(main())
    assert hook.calls == []  # the timed-out ask was dropped, nothing was read for it


def test_a_whole_scope_subscription_gets_every_object_of_its_story():
    hook = FakeHook(TENANT, page_size=2)

    async def main() -> Any:
        async with subscribe(
            "tines_default", TINES_ACTION, None, prepare_hook=lambda: hook, scope=20, whole_scope=True
        ) as story:
            return await story.read(timeout=5)

    reading = asyncio.run(main())
    assert sorted(reading.objects) == [21, 22]
    assert hook.calls == [("list", 20, 1)]


def test_pollers_are_per_connection_and_stop_when_nobody_waits():
    hooks = {"a": FakeHook(TENANT), "b": FakeHook(TENANT)}

    async def main() -> int:
        async with (
            subscribe("a", TINES_ACTION, 1, prepare_hook=lambda: hooks["a"]) as one,
            subscribe("b", TINES_ACTION, 1, prepare_hook=lambda: hooks["b"]) as other,
        ):
            count = len(active_pollers())
            await asyncio.gather(one.read(timeout=5), other.read(timeout=5))
        assert active_pollers() == {}
        return count

    assert asyncio.run(main()) == 2
    assert hooks["a"].calls == hooks["b"].calls == [("get", 1)]
    assert hooks["a"].closed and hooks["b"].closed


def test_a_poller_that_could_not_open_is_not_kept_for_the_next_subscriber():
    hook = FakeHook(TENANT)
    attempts = []

    def flaky() -> FakeHook:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("the metadata DB is away")
        return hook

    async def main() -> Any:
        with pytest.raises(ConnectionError):
            async with subscribe("tines_default", TINES_ACTION, 1, prepare_hook=flaky):
                pass
        assert active_pollers() == {}
        async with subscribe("tines_default", TINES_ACTION, 1, prepare_hook=flaky) as subscription:
            return await subscription.read(timeout=5)

    assert asyncio.run(main()).object["id"] == 1
    assert len(attempts) == 2


def test_a_subscriber_cancelled_while_the_poller_opens_leaves_no_session_open():
    import time

    hook = FakeHook(TENANT)

    def slow() -> FakeHook:
        time.sleep(0.3)  # the connection lookup, in its thread
        return hook

    async def main() -> None:
        async def wait() -> None:
            async with subscribe("tines_default", TINES_ACTION, 1, prepare_hook=slow):
                await asyncio.sleep(10)

        task = asyncio.create_task(wait())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert active_pollers() == {}
        await asyncio.sleep(0.5)  # the lookup's thread ends meanwhile

    asyncio.run(main())
    assert hook.opened is hook.closed  # never opened, or closed
    assert hook.calls == []
