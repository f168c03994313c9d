"""
The shared poller's choices on a fake hook (no sockets): one GET for a lone ask, a list page for
many, where paging stops, what an object missing from a list gets, how list errors reach the
asks, gathering, and the poller's lifetime.
"""

from __future__ import annotations

import asyncio
import dataclasses
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


def _asks(
    hook: FakeHook, ids: list[int], *, scope: Any = None, interval: float | None = None, rounds: int = 1
):
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
                        got.append(await subscription.read(timeout=5, interval=interval))
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
            lone = await first.read(timeout=10, interval=1.2)  # the second never asks: read alone
            waited = loop.time() - started
            together = await asyncio.gather(
                first.read(timeout=10, interval=20), second.read(timeout=10, interval=20)
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
            ask = asyncio.create_task(first.read(timeout=30, interval=120))
            await asyncio.sleep(0.05)
            await leaving.__aexit__(None, None, None)
            await ask
            return loop.time() - started

    assert asyncio.run(main()) < 5


def test_an_ask_near_its_deadline_is_not_gathered_away():
    # The last poll before a sensor's deadline: the ask waits for the others at most half of what
    # is left, the other half stays for the read.
    hook = FakeHook(TENANT)

    async def main() -> tuple[float, Any]:
        loop = asyncio.get_running_loop()
        async with (
            subscribe("tines_default", TINES_ACTION, 1, prepare_hook=lambda: hook, scope=10) as first,
            subscribe("tines_default", TINES_ACTION, 2, prepare_hook=lambda: hook, scope=10),
        ):
            started = loop.time()
            reading = await first.read(timeout=0.6, interval=120)  # the other never asks
            return loop.time() - started, reading

    waited, reading = asyncio.run(main())
    assert 0.25 <= waited < 0.55 and reading.object["id"] == 1
    assert hook.calls == [("get", 1)]


def test_an_ask_whose_deadline_passes_during_its_read_raises_and_the_others_get_theirs():
    hook = FakeHook(TENANT)
    slow = hook.aget_object

    async def slow_get(session, settings, kind, object_id, *, timeout=None):
        await asyncio.sleep(0.3)
        return await slow(session, settings, kind, object_id, timeout=timeout)

    hook.aget_object = slow_get  # type: ignore[method-assign]

    async def main() -> Any:
        async with (
            subscribe("tines_default", TINES_ACTION, 1, prepare_hook=lambda: hook, scope=10) as first,
            subscribe("tines_default", TINES_ACTION, 99, prepare_hook=lambda: hook, scope=10) as other,
        ):
            short, long = await asyncio.gather(
                first.read(timeout=0.1), other.read(timeout=5), return_exceptions=True
            )
        assert active_pollers() == {}
        return short, long

    short, long = asyncio.run(main())
    assert isinstance(short, asyncio.TimeoutError)
    assert isinstance(long, ApiRequestError) and long.http_status == 404


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


def test_a_list_error_that_is_not_the_key_s_is_not_handed_to_objects_a_get_would_find():
    # Page 2 of story 10 answers 404: actions 4-7 exist, and a GET each says so.
    hook = FakeHook(TENANT)
    hook.list_errors = []
    real_list = hook.alist_page

    async def page_two_missing(session, settings, kind, scope, page, *, timeout=None):
        if page == 2:
            hook.calls.append(("list", scope, page))
            raise _error(404, retryable=False)
        return await real_list(session, settings, kind, scope, page, timeout=timeout)

    hook.alist_page = page_two_missing  # type: ignore[method-assign]
    results = _asks(hook, [1, 2, 3, 4, 5, 6, 7], scope=10)
    assert [r[0].object["id"] for r in results] == [1, 2, 3, 4, 5, 6, 7]
    assert sorted(c for c in hook.calls if c[0] == "get") == [("get", i) for i in (4, 5, 6, 7)]


def test_a_story_whose_list_is_refused_is_read_with_gets_and_other_stories_are_still_listed():
    hook = FakeHook({**TENANT, 31: 30, 32: 30})
    real_list = hook.alist_page

    async def story_30_refused(session, settings, kind, scope, page, *, timeout=None):
        if scope == 30:
            hook.calls.append(("list", scope, page))
            raise _error(404, retryable=False)
        return await real_list(session, settings, kind, scope, page, timeout=timeout)

    hook.alist_page = story_30_refused  # type: ignore[method-assign]
    _asks(hook, [31, 32], scope=30, rounds=2)
    assert hook.calls[0] == ("list", 30, 1)
    assert sorted(hook.calls[1:]) == [("get", 31), ("get", 31), ("get", 32), ("get", 32)]
    hook.calls.clear()
    _asks(hook, [1, 2], scope=10)
    assert hook.calls == [("list", 10, 1)]


def test_objects_a_complete_list_does_not_show_are_read_with_gets_from_then_on():
    # 98 and 99 are not in story 10's list (drafts, or yet to be made): after one list read they
    # are read with a GET each, not with a list page and a GET each round.
    hook = FakeHook(TENANT, page_size=10)
    _asks(hook, [98, 99], scope=10, rounds=3)
    assert hook.calls[0] == ("list", 10, 1)
    assert [c[0] for c in hook.calls[1:]] == ["get"] * 6


def test_a_rotated_key_is_read_again_after_a_401_and_the_read_repeated():
    hooks = []

    def prepare() -> FakeHook:
        hook = FakeHook(TENANT)
        if not hooks:  # the first read of the connection has the old key: every request is refused

            async def refused(*args, **kwargs):
                raise _error(401, retryable=False)

            hook.aget_object = refused  # type: ignore[method-assign]
        else:  # the connection now holds the new key
            hook.settings = dataclasses.replace(hook.settings, api_key="n" * 12)
        hooks.append(hook)
        return hook

    async def main() -> Any:
        async with subscribe("tines_default", TINES_ACTION, 1, prepare_hook=prepare) as subscription:
            return await subscription.read(timeout=10)

    assert asyncio.run(main()).object["id"] == 1
    assert len(hooks) == 2 and hooks[1].calls == [("get", 1)]
    assert hooks[0].closed and hooks[1].closed  # both sessions closed with the poller


def test_a_list_that_says_it_has_more_pages_but_gives_no_way_there_is_not_taken_as_whole():
    hook = FakeHook(TENANT, page_size=2)
    real_list = hook.alist_page

    async def no_next(session, settings, kind, scope, page, *, timeout=None):
        result = await real_list(session, settings, kind, scope, page, timeout=timeout)
        return ListPage(result.items, None, result.pages)

    hook.alist_page = no_next  # type: ignore[method-assign]

    async def main() -> Any:
        async with subscribe(
            "tines_default", TINES_ACTION, None, prepare_hook=lambda: hook, scope=10, whole_scope=True
        ) as story:
            return await story.read(timeout=5)

    with pytest.raises(ApiRequestError, match="page 1 of 4 has no next page"):
        asyncio.run(main())


def test_a_cancelled_trigger_is_cancelled_even_when_its_reading_arrives_at_that_moment():
    # asyncio.wait_for on Python 3.10 and 3.11 returns the result and drops such a cancellation.
    from airflow_provider_fluents_tines.triggers.poller import Reading

    hook = FakeHook(TENANT)

    async def main() -> None:
        async with (
            subscribe("tines_default", TINES_ACTION, 1, prepare_hook=lambda: hook, scope=10) as first,
            subscribe("tines_default", TINES_ACTION, 2, prepare_hook=lambda: hook, scope=10),
        ):
            task = asyncio.create_task(first.read(timeout=30, interval=120))
            while not first.poller._asks.get(10):
                await asyncio.sleep(0.001)
            [ask] = first.poller._asks[10]
            ask.future.set_result(Reading(object={"id": 1}))
            task.cancel()  # in the same turn of the loop as the reading
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())


def test_subscribers_out_of_step_fall_into_step_and_share_reads():
    # Two subscribers of one story polling every 0.2 s, a third of an interval apart: after a
    # read or two they are read together, one list read per interval instead of two reads.
    hook = FakeHook(TENANT, page_size=10)  # the story is one page: reading both costs one request
    interval, seconds = 0.2, 2.0

    async def main() -> None:
        async def poll(object_id: int, offset: float) -> None:
            async with subscribe(
                "tines_default", TINES_ACTION, object_id, prepare_hook=lambda: hook, scope=10
            ) as subscription:
                await asyncio.sleep(offset)
                loop = asyncio.get_running_loop()
                ends = loop.time() + seconds
                first = True
                while loop.time() < ends:
                    await subscription.read(timeout=5, interval=None if first else interval)
                    first = False
                    await asyncio.sleep(interval)

        await asyncio.gather(poll(1, 0.0), poll(2, interval / 3))

    asyncio.run(main())
    reads = len(hook.calls)
    # Apart, each would be read every interval: about 2 * seconds / interval = 20 reads.
    assert reads <= 0.6 * 2 * seconds / interval, hook.calls
    assert ("list", 10, 1) in hook.calls


def test_the_poller_runs_on_uvloop():
    # Airflow 3.0's triggerer can run on uvloop, whose call_at() for a time already come returns a
    # plain handle, without when(): two first asks at once in a scope not all asking hit it.
    uvloop = pytest.importorskip("uvloop")
    hook = FakeHook(TENANT)

    async def main() -> list[Any]:
        async with (
            subscribe("tines_default", TINES_ACTION, 1, prepare_hook=lambda: hook, scope=10) as first,
            subscribe("tines_default", TINES_ACTION, 2, prepare_hook=lambda: hook, scope=10) as second,
            subscribe("tines_default", TINES_ACTION, 3, prepare_hook=lambda: hook, scope=10),
        ):
            both = await asyncio.gather(first.read(timeout=10), second.read(timeout=10))
            later = await first.read(timeout=10, interval=0.4)  # a timer in the future, too
            return [*both, later]

    loop = uvloop.new_event_loop()
    try:
        readings = loop.run_until_complete(main())
    finally:
        loop.close()
    assert [r.object["id"] for r in readings] == [1, 2, 1]
