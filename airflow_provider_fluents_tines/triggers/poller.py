"""
The triggerer's shared poller: every trigger of this provider that waits on objects of one
connection and kind, in one event loop (a triggerer process), reads them through one poller.

Each trigger subscribes to its object and asks for a reading when it wants one
(:meth:`Subscription.read`); the poller gathers the asks of one *scope* (a Tines story, or a whole
Fluents list) and answers them together:

- few asks (no more than the scope's list has pages): one GET per object;
- more asks than pages: the list endpoint, page by page, stopping once every asked object is found
  or once reading the rest one by one is cheaper; an object the list does not show is then read
  with its own GET (that answers a 404, a draft action, or a list that shifted while paged).

An ask waits at most its ``gather`` seconds for the scope's other subscribers to ask too, and not
at all when every subscriber of the scope has asked, so a lone trigger is read at once and many
triggers fall into step. Every request goes through the connection's request budget
(``hooks.budget``), which a ``429`` holds back for everyone. The poller opens one HTTP session and
resolves the connection once, when its first subscriber arrives, and closes both when the last one
leaves. Triggers keep their own intervals, deadlines, expected states and events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from airflow_provider_fluents_tines.exceptions import ApiRequestError
from airflow_provider_fluents_tines.objects import ObjectKind

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.base import ApiSettings, BaseServiceHook

log = logging.getLogger(__name__)

#: GETs of single objects one poller keeps in flight at once (the budget paces them in any case).
CONCURRENT_GETS = 8
#: Pages one list read follows at most (50,000 Tines actions, 10,000 Fluents objects).
MAX_PAGES = 100
#: An ask waits for the scope's other subscribers at most this long, whatever its interval.
MAX_GATHER_SECONDS = 15.0


def gather_seconds(interval: float) -> float:
    """How long an ask made every ``interval`` seconds may wait to be read with others: a quarter of it."""
    return max(0.0, min(MAX_GATHER_SECONDS, interval / 4))


@dataclass(frozen=True)
class Reading:
    """
    What one ask got: the object (``object``), or every object of a scope by id (``objects``), and
    whether it came from a list page (``listed``: a list item's shape, see ``list_item_is_full``).
    """

    object: dict[str, Any] | None = None
    objects: dict[Any, dict[str, Any]] | None = None
    listed: bool = False


@dataclass(eq=False)
class _Ask:
    subscription: Subscription
    future: asyncio.Future[Reading]
    single: bool  # read with its own GET, whatever the others do


class Subscription:
    """
    One trigger's interest in one object (or, with ``whole_scope``, in every object of a scope).
    Made by :func:`subscribe`; ask for readings with :meth:`read`.
    """

    def __init__(self, poller: SharedPoller, object_id: Any, scope: Hashable | None, whole_scope: bool):
        self.poller = poller
        self.object_id = object_id
        self.scope = scope
        self.whole_scope = whole_scope

    async def read(self, *, timeout: float, gather: float = 0.0, single: bool = False) -> Reading:
        """
        A reading made by a request that starts after this call.

        :param timeout: seconds to wait for it (the trigger's deadline); ``asyncio.TimeoutError`` after.
        :param gather: seconds the ask may wait for the scope's other subscribers to ask too.
        :param single: read this object with its own GET (a match seen in a list item is confirmed so).
        :raises ApiRequestError: the read failed (as a GET of the object would have).
        """
        return await self.poller._ask(self, timeout=timeout, gather=gather, single=single)


class SharedPoller:
    """
    The reads of one (connection, object kind, hook settings) in one event loop. Use
    :func:`subscribe`, which makes, shares and stops pollers.

    :param kind: the kind of object read.
    :param prepare_hook: builds the hook (blocking: run in a thread, once).
    """

    def __init__(self, kind: ObjectKind, prepare_hook: Callable[[], BaseServiceHook]):
        self.kind = kind
        self._prepare_hook = prepare_hook
        self.hook: BaseServiceHook | None = None
        self.settings: ApiSettings | None = None
        self._session: Any = None
        self._stack = AsyncExitStack()
        self._opened: asyncio.Future[None] | None = None
        self.users = 0
        self._members: dict[Hashable | None, set[Subscription]] = {}
        self._by_id: dict[Any, set[Subscription]] = {}
        self._asks: dict[Hashable | None, list[_Ask]] = {}
        self._timers: dict[Hashable | None, asyncio.TimerHandle] = {}
        self._serving: set[asyncio.Task[None]] = set()
        #: the scope each object was last read in (Tines: its story), learned from every read.
        self._scopes: dict[Any, Hashable | None] = {}
        #: pages each scope's list had when last read (1 until read).
        self._pages: dict[Hashable | None, int] = {}
        self.bulk = kind.list_page_size is not None
        self._gets = asyncio.Semaphore(CONCURRENT_GETS)
        #: requests sent, by kind of read (for tests and the benchmark).
        self.sent = {"get": 0, "list": 0}

    # ---- lifetime ------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Resolve the connection (in a thread) and open the session; every user awaits the same opening."""
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._open())
        await asyncio.shield(self._opened)

    async def _open(self) -> None:
        hook = await sync_to_async(self._prepare_hook)()
        settings = hook.settings
        self._session = await self._stack.enter_async_context(hook.async_session(settings))
        self.hook, self.settings = hook, settings

    async def close(self) -> None:
        if self._opened is not None and not self._opened.done():
            # The last subscriber left while the connection was being read: the session it would
            # open must not outlive the poller.
            self._opened.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._opened
        for timer in self._timers.values():
            timer.cancel()
        for task in list(self._serving):
            task.cancel()
        for asks in self._asks.values():
            for ask in asks:
                if not ask.future.done():
                    ask.future.cancel()
        await self._stack.aclose()

    # ---- subscriptions -------------------------------------------------------------------------------

    def subscribe(
        self, object_id: Any, scope: Hashable | None = None, *, whole_scope: bool = False
    ) -> Subscription:
        """Subscribe to ``object_id`` (``scope``: where it is thought to be), or to all of ``scope``."""
        if not whole_scope:
            scope = self._scopes.get(object_id, scope)
            if scope is not None and (not self.bulk or self.kind.list_request(scope, 1) is None):
                scope = None  # not a scope this kind lists: the object is grouped with the whole list
        subscription = Subscription(self, object_id, scope, whole_scope)
        self._members.setdefault(scope, set()).add(subscription)
        if not whole_scope:
            self._by_id.setdefault(object_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        members = self._members.get(subscription.scope)
        if members is not None:
            members.discard(subscription)
            if not members:
                del self._members[subscription.scope]
        watchers = self._by_id.get(subscription.object_id)
        if watchers is not None and not subscription.whole_scope:
            watchers.discard(subscription)
            if not watchers:
                del self._by_id[subscription.object_id]
        # The others of its scope may have been waiting for it to ask.
        self._serve_if_ready(subscription.scope)

    def _learn(self, object_id: Any, scope: Hashable | None) -> None:
        """Where ``object_id`` was read: its subscriptions move to that scope's group."""
        if not self.bulk or (scope is not None and self.kind.list_request(scope, 1) is None):
            scope = None
        self._scopes[object_id] = scope
        for subscription in self._by_id.get(object_id, ()):
            if subscription.scope != scope:
                self._members[subscription.scope].discard(subscription)
                if not self._members[subscription.scope]:
                    del self._members[subscription.scope]
                subscription.scope = scope
                self._members.setdefault(scope, set()).add(subscription)

    # ---- asks ----------------------------------------------------------------------------------------

    async def _ask(
        self, subscription: Subscription, *, timeout: float, gather: float, single: bool
    ) -> Reading:
        loop = asyncio.get_running_loop()
        ask = _Ask(subscription, loop.create_future(), single)
        scope = subscription.scope
        self._asks.setdefault(scope, []).append(ask)
        if not self._serve_if_ready(scope):
            serve_at = loop.time() + max(0.0, gather)
            timer = self._timers.get(scope)
            if timer is None or timer.when() > serve_at:
                if timer is not None:
                    timer.cancel()
                self._timers[scope] = loop.call_at(serve_at, self._serve, scope)
        try:
            return await asyncio.wait_for(asyncio.shield(ask.future), timeout=max(0.0, timeout))
        finally:
            if not ask.future.done():
                ask.future.cancel()  # the server of its scope skips it

    def _serve_if_ready(self, scope: Hashable | None) -> bool:
        """Serve ``scope`` now when every subscriber of it has asked: nobody else is worth waiting for."""
        asks = [ask for ask in self._asks.get(scope, ()) if not ask.future.done()]
        if not asks:
            return False
        asking = {ask.subscription for ask in asks}
        if len(asking) < len(self._members.get(scope, ())):
            return False
        self._serve(scope)
        return True

    def _serve(self, scope: Hashable | None) -> None:
        timer = self._timers.pop(scope, None)
        if timer is not None:
            timer.cancel()
        asks = [ask for ask in self._asks.pop(scope, ()) if not ask.future.done()]
        if asks:
            task = asyncio.ensure_future(self._answer(scope, asks))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    # ---- reads ---------------------------------------------------------------------------------------

    async def _answer(self, scope: Hashable | None, asks: list[_Ask]) -> None:
        try:
            await self._read_and_deliver(scope, asks)
        except Exception as err:  # a defect must not leave triggers waiting for ever
            log.exception("The shared poller failed to read %s %ss", self.kind.service, self.kind.noun)
            for ask in asks:
                if not ask.future.done():
                    ask.future.set_exception(err)

    async def _read_and_deliver(self, scope: Hashable | None, asks: list[_Ask]) -> None:
        wanted = {
            ask.subscription.object_id for ask in asks if not (ask.subscription.whole_scope or ask.single)
        }
        singles = {ask.subscription.object_id for ask in asks if ask.single}
        whole = any(ask.subscription.whole_scope for ask in asks)
        listed: dict[Any, dict[str, Any]] = {}
        listing: dict[Any, dict[str, Any]] | None = None
        list_error: ApiRequestError | None = None
        unfound = set(wanted)
        listable = self.bulk and self.kind.list_request(scope, 1) is not None
        # A page costs one request, as a GET does: list only when that takes fewer requests.
        if listable and (whole or len(wanted) > self._pages.get(scope, 1)):
            listed, unfound, listing, list_error = await self._list(scope, wanted, whole)
        got: dict[Any, dict[str, Any] | ApiRequestError] = {}
        if list_error is not None and self.bulk:
            # The list failed as a GET would have (auth, the rate limit, a server error, the
            # deadline): the objects it did not show get that error, not a GET each.
            got.update(dict.fromkeys(unfound, list_error))
            unfound = set()
        got.update(await self._get_each((unfound | singles) - got.keys()))
        for ask in asks:
            if ask.future.done():
                continue
            subscription = ask.subscription
            if subscription.whole_scope:
                if listing is not None:
                    ask.future.set_result(Reading(objects=listing, listed=True))
                else:
                    ask.future.set_exception(list_error or self._not_listed(scope))
                continue
            object_id = subscription.object_id
            if not ask.single and object_id in listed:
                ask.future.set_result(Reading(object=listed[object_id], listed=True))
                continue
            result = got.get(object_id)
            if isinstance(result, ApiRequestError):
                ask.future.set_exception(result)
            elif result is not None:
                ask.future.set_result(Reading(object=result))

    async def _list(
        self, scope: Hashable | None, wanted: set[Any], whole: bool
    ) -> tuple[dict[Any, dict[str, Any]], set[Any], dict[Any, dict[str, Any]] | None, ApiRequestError | None]:
        """
        Page through ``scope``'s list: (the wanted objects found, those not found, the whole listing
        when ``whole`` and it completed, the error that stopped it).
        """
        assert self.hook is not None and self.settings is not None
        found: dict[Any, dict[str, Any]] = {}
        listing: dict[Any, dict[str, Any]] = {}
        page = 1
        while True:
            self.sent["list"] += 1
            try:
                result = await self.hook.alist_page(self._session, self.settings, self.kind, scope, page)
            except ApiRequestError as err:
                if page == 1 and not err.retryable and err.http_status in (200, 400, 404, 405, 422):
                    # The list endpoint is not what the reference says: read one by one from now on.
                    self.bulk = False
                    log.warning(
                        "Listing %s %ss failed (%s): reading each object with its own GET from now on.",
                        self.kind.service,
                        self.kind.noun,
                        err,
                    )
                return found, wanted - found.keys(), None, err
            if result.pages is not None:
                self._pages[scope] = result.pages
            for item in result.items:
                object_id = self.kind.listed_id(item)
                if object_id is None:
                    continue
                self._learn(object_id, scope if scope is not None else self.kind.scope_of(item))
                if whole:
                    listing[object_id] = item
                if object_id in wanted:
                    found[object_id] = item
            unfound = wanted - found.keys()
            if result.next_page is None:
                return found, unfound, listing if whole else None, None
            if page >= MAX_PAGES:
                log.warning("Stopped listing %s %ss after %d pages.", self.kind.service, self.kind.noun, page)
                return found, unfound, None, None
            if not whole:
                pages_left = (result.pages or page + 1) - page
                if not unfound or pages_left >= len(unfound):
                    return found, unfound, None, None  # the rest costs no more one by one
            page = result.next_page

    async def _get_each(self, object_ids: set[Any]) -> dict[Any, dict[str, Any] | ApiRequestError]:
        """One GET per object, a few at a time; each result or its error."""
        assert self.hook is not None and self.settings is not None
        hook, settings = self.hook, self.settings

        async def get(object_id: Any) -> tuple[Any, dict[str, Any] | ApiRequestError]:
            async with self._gets:
                self.sent["get"] += 1
                try:
                    obj = await hook.aget_object(self._session, settings, self.kind, object_id)
                except ApiRequestError as err:
                    return object_id, err
            self._learn(object_id, self.kind.scope_of(obj))
            return object_id, obj

        return dict(await asyncio.gather(*(get(object_id) for object_id in object_ids)))

    def _not_listed(self, scope: Hashable | None) -> ApiRequestError:
        return ApiRequestError(
            service=self.kind.service,
            method="GET",
            path=f"(list of {self.kind.noun}s in {scope})",
            http_status=None,
            api_message="the list could not be read whole",
            retryable=True,
        )


async def read_object(
    subscription: Subscription, expected: Mapping[str, Any], *, timeout: float, gather: float = 0.0
) -> dict[str, Any]:
    """
    One reading of a subscribed object, for a wait on ``expected``. A list item is confirmed with
    the object's own GET when it matches but is not in a GET's shape (Fluents numbers), so that
    what a sensor returns has one shape, and when it lacks a field the wait expects (list items
    are not documented to carry every field).
    """
    loop = asyncio.get_running_loop()
    ends = loop.time() + timeout
    reading = await subscription.read(timeout=timeout, gather=gather)
    current = reading.object
    assert current is not None
    kind = subscription.poller.kind
    if reading.listed and (
        any(name not in current for name in expected)
        or (not kind.list_item_is_full and not kind.state_differences(current, expected))
    ):
        current = (await subscription.read(timeout=max(0.0, ends - loop.time()), single=True)).object
        assert current is not None
    return current


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, str], SharedPoller]] = (
    weakref.WeakKeyDictionary()
)


def active_pollers() -> dict[tuple[str, str, str], SharedPoller]:
    """The pollers of the running event loop, by (connection, kind, hook settings): for tests and logs."""
    return _POLLERS.get(asyncio.get_running_loop(), {})


@asynccontextmanager
async def subscribe(
    conn_id: str,
    kind: ObjectKind,
    object_id: Any,
    *,
    prepare_hook: Callable[[], BaseServiceHook],
    hook_params: dict[str, Any] | None = None,
    scope: Hashable | None = None,
    whole_scope: bool = False,
) -> AsyncIterator[Subscription]:
    """
    Subscribe to one object through the running loop's poller for (``conn_id``, ``kind``,
    ``hook_params``), made on first use and stopped when its last subscription ends.

    :param prepare_hook: builds the hook; called once per poller, in a thread.
    :param scope: where the object is thought to be (a Tines story id), so that the first reads can
        be bulk ones; learned from reads otherwise.
    :param whole_scope: subscribe to every object of ``scope`` (:attr:`Reading.objects`).
    """
    loop = asyncio.get_running_loop()
    pollers = _POLLERS.setdefault(loop, {})
    key = (conn_id, kind.key, json.dumps(hook_params or {}, sort_keys=True))
    poller = pollers.get(key)
    if poller is None:
        poller = pollers[key] = SharedPoller(kind, prepare_hook)
    poller.users += 1
    subscription: Subscription | None = None
    try:
        try:
            await poller.open()
        except Exception:
            # A failed opening (a connection that cannot be read now) is not kept for later subscribers.
            if pollers.get(key) is poller:
                del pollers[key]
            raise
        subscription = poller.subscribe(object_id, scope, whole_scope=whole_scope)
        yield subscription
    finally:
        if subscription is not None:
            poller.unsubscribe(subscription)
        poller.users -= 1
        if poller.users == 0:
            if pollers.get(key) is poller:
                del pollers[key]
            await poller.close()
