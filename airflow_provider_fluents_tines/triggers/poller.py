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

An ask waits a quarter of its interval (at most 15 s) for the scope's other subscribers to ask too,
or until the scope's next read when that is due within half an interval, and not at all when every
subscriber of the scope has asked: a lone trigger is read at once, and many triggers fall into step. Every request goes through the connection's request budget
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
from dataclasses import dataclass, field
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
#: A poller reads its connection again after this long (a rotated key, a new host), and at once
#: when the API answers 401.
CONNECTION_TTL_SECONDS = 300.0
#: A scope whose list endpoint refused a request is read with GETs this long before it is listed again.
LIST_OFF_SECONDS = 600.0


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


@dataclass
class _Listed:
    """What one list read gave: the asked objects it showed, those it did not, and how it ended."""

    found: dict[Any, dict[str, Any]] = field(default_factory=dict)
    unfound: set[Any] = field(default_factory=set)
    #: every object of the scope, when read whole and the read completed.
    listing: dict[Any, dict[str, Any]] | None = None
    #: what stopped it, for whole-scope asks.
    error: ApiRequestError | None = None
    #: the error holds for every unfound object too (auth, the rate limit, a server error, the
    #: deadline): they get it instead of a GET each. Otherwise they are read one by one.
    shared: bool = False


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

    async def read(self, *, timeout: float, interval: float | None = None, single: bool = False) -> Reading:
        """
        A reading made by a request that starts after this call.

        :param timeout: seconds to wait for it (the trigger's deadline); ``asyncio.TimeoutError`` after.
        :param interval: how often this subscriber asks; the ask may wait a little for the scope's
            other subscribers (see :meth:`SharedPoller._wait_for_others`). None: read at once.
        :param single: read this object with its own GET (a match seen in a list item is confirmed so).
        :raises ApiRequestError: the read failed (as a GET of the object would have).
        """
        return await self.poller._ask(self, timeout=timeout, interval=interval, single=single)


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
        self._resolved_at = 0.0
        self._resolving = asyncio.Lock()
        self.users = 0
        self._members: dict[Hashable | None, set[Subscription]] = {}
        self._by_id: dict[Any, set[Subscription]] = {}
        self._asks: dict[Hashable | None, list[_Ask]] = {}
        # Each scope's timer and when it fires (kept apart: uvloop's handles have no when()).
        self._timers: dict[Hashable | None, tuple[asyncio.Handle, float]] = {}
        #: the subscriptions of each scope with an ask waiting, and when each scope was last read.
        self._asking: dict[Hashable | None, set[Subscription]] = {}
        self._last_served: dict[Hashable | None, float] = {}
        self._serving: set[asyncio.Task[None]] = set()
        #: the scope each object was last read in (Tines: its story), learned from every read.
        self._scopes: dict[Any, Hashable | None] = {}
        #: pages each scope's list had when last read (1 until read).
        self._pages: dict[Hashable | None, int] = {}
        #: scopes whose list endpoint refused a request -> the loop time they may be listed again.
        self._list_off_until: dict[Hashable | None, float] = {}
        #: subscribed objects a complete list read did not show (drafts, objects yet to be made):
        #: read with GETs, not with a list page each round, until a list shows them.
        self._unlisted: set[Any] = set()
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
        await self._resolve()

    async def _resolve(self) -> bool:
        """
        Read the connection (in a thread) and, when its settings changed (or on the first call),
        open a session with them. True when they changed; the old session is closed with the poller.
        """
        hook = await sync_to_async(self._prepare_hook)()
        settings = hook.settings
        self._resolved_at = asyncio.get_running_loop().time()
        if (
            self.settings is not None
            and settings == self.settings
            and settings.budget is self.settings.budget
        ):
            return False
        # Requests in flight may still use the old session: it is closed with the poller, not now.
        self._session = await self._stack.enter_async_context(hook.async_session(settings))
        if self.settings is not None:
            log.info("The %s connection changed: the shared poller uses its new settings.", self.kind.service)
        self.hook, self.settings = hook, settings
        return True

    async def _refresh(self, *, force: bool) -> bool:
        """Read the connection again when it is due (or ``force``); True when its settings changed."""
        async with self._resolving:
            if not force and asyncio.get_running_loop().time() - self._resolved_at < CONNECTION_TTL_SECONDS:
                return False
            try:
                return await self._resolve()
            except Exception as err:  # the metadata DB away: go on with the settings there are
                self._resolved_at = asyncio.get_running_loop().time()
                log.warning(
                    "Reading the %s connection again failed (%s); keeping its settings.",
                    self.kind.service,
                    err,
                )
                return False

    async def close(self) -> None:
        if self._opened is not None and not self._opened.done():
            # The last subscriber left while the connection was being read: the session it would
            # open must not outlive the poller.
            self._opened.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._opened
        for timer, _ in self._timers.values():
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
            if scope is not None and self.kind.list_request(scope, 1) is None:
                scope = None  # not a scope this kind lists: the object is grouped with the whole list
        subscription = Subscription(self, object_id, scope, whole_scope)
        self._members.setdefault(scope, set()).add(subscription)
        if not whole_scope:
            self._by_id.setdefault(object_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        asking = self._asking.get(subscription.scope)
        if asking is not None:
            asking.discard(subscription)
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
                self._scopes.pop(subscription.object_id, None)
                self._unlisted.discard(subscription.object_id)
        # The others of its scope may have been waiting for it to ask.
        self._serve_if_ready(subscription.scope)

    def _learn(self, object_id: Any, scope: Hashable | None) -> None:
        """Where a subscribed ``object_id`` was read: its subscriptions move to that scope's group."""
        if object_id not in self._by_id:
            return  # only subscribed objects are remembered: a tenant's listing is not kept
        if scope is not None and self.kind.list_request(scope, 1) is None:
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
        self, subscription: Subscription, *, timeout: float, interval: float | None, single: bool
    ) -> Reading:
        loop = asyncio.get_running_loop()
        now = loop.time()
        ask = _Ask(subscription, loop.create_future(), single)
        scope = subscription.scope
        self._asks.setdefault(scope, []).append(ask)
        self._asking.setdefault(scope, set()).add(subscription)
        if not self._serve_if_ready(scope):
            serve_at = now + self._wait_for_others(scope, now, interval)
            # Never gather away the time the read itself needs: half of what is left before the
            # deadline stays for it, so the last poll before a deadline is made.
            serve_at = min(serve_at, now + max(0.0, timeout) / 2)
            timer = self._timers.get(scope)
            if timer is None or timer[1] > serve_at:
                if timer is not None:
                    timer[0].cancel()
                self._timers[scope] = (loop.call_at(serve_at, self._serve, scope), serve_at)
        try:
            # asyncio.wait, not wait_for: on Python 3.10 and 3.11 wait_for can swallow a
            # cancellation that arrives as the reading does, and a cancelled trigger would go on.
            done, _ = await asyncio.wait({ask.future}, timeout=max(0.0, timeout))
            if not done:
                raise asyncio.TimeoutError
            return ask.future.result()
        finally:
            if not ask.future.done():
                ask.future.cancel()  # the server of its scope skips it
                asking = self._asking.get(scope)
                if asking is not None:
                    asking.discard(subscription)

    def _wait_for_others(self, scope: Hashable | None, now: float, interval: float | None) -> float:
        """
        How long an ask made every ``interval`` seconds waits for the rest of its scope: a quarter
        of the interval (at most 15 s); and when the scope's next read is due within half an
        interval (one interval after its last), until then. An ask out of step with its scope's
        reads thus falls into step within a read or two, instead of costing a read of its own
        every interval. A first ask (no interval) does not wait.
        """
        if interval is None:
            return 0.0
        gather = gather_seconds(interval)
        last = self._last_served.get(scope)
        if last is not None and now < last + interval <= now + interval / 2:
            return last + interval - now + gather
        return gather

    def _serve_if_ready(self, scope: Hashable | None) -> bool:
        """Serve ``scope`` now when every subscriber of it has asked: nobody else is worth waiting for."""
        asking = self._asking.get(scope)
        if not asking or len(asking) < len(self._members.get(scope, ())):
            return False
        self._serve(scope)
        return True

    def _serve(self, scope: Hashable | None) -> None:
        timer = self._timers.pop(scope, None)
        if timer is not None:
            timer[0].cancel()
        self._asking.pop(scope, None)
        asks = [ask for ask in self._asks.pop(scope, ()) if not ask.future.done()]
        if asks:
            self._last_served[scope] = asyncio.get_running_loop().time()
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
        await self._refresh(force=False)
        listed, got = await self._read(scope, asks)
        refused = [
            r
            for r in (listed.error, *got.values())
            if isinstance(r, ApiRequestError) and r.http_status == 401
        ]
        # A 401 may mean the key was rotated since the poller read the connection: read it again.
        if refused and await self._refresh(force=True):
            listed, got = await self._read(scope, asks)
        for ask in asks:
            if ask.future.done():
                continue
            subscription = ask.subscription
            if subscription.whole_scope:
                if listed.listing is not None:
                    ask.future.set_result(Reading(objects=listed.listing, listed=True))
                else:
                    ask.future.set_exception(listed.error or self._not_listed(scope))
                continue
            object_id = subscription.object_id
            if not ask.single and object_id in listed.found:
                ask.future.set_result(Reading(object=listed.found[object_id], listed=True))
                continue
            result = got.get(object_id)
            if isinstance(result, ApiRequestError):
                ask.future.set_exception(result)
            elif result is not None:
                ask.future.set_result(Reading(object=result))

    async def _read(
        self, scope: Hashable | None, asks: list[_Ask]
    ) -> tuple[_Listed, dict[Any, dict[str, Any] | ApiRequestError]]:
        """Read what ``asks`` want: a list read when that takes fewer requests, GETs for the rest."""
        asked = {
            ask.subscription.object_id for ask in asks if not (ask.subscription.whole_scope or ask.single)
        }
        singles = {ask.subscription.object_id for ask in asks if ask.single} | (asked & self._unlisted)
        wanted = asked - self._unlisted
        whole = any(ask.subscription.whole_scope for ask in asks)
        listed = _Listed(unfound=set(wanted))
        listable = (
            self.kind.list_request(scope, 1) is not None
            and self._list_off_until.get(scope, 0.0) <= asyncio.get_running_loop().time()
        )
        # A page costs one request, as a GET does: list only when that takes fewer requests.
        if listable and (whole or len(wanted) > self._pages.get(scope, 1)):
            listed = await self._list(scope, wanted, whole)
        got: dict[Any, dict[str, Any] | ApiRequestError] = {}
        if listed.error is not None and listed.shared:
            got.update(dict.fromkeys(listed.unfound, listed.error))
        got.update(await self._get_each((listed.unfound | singles) - got.keys()))
        return listed, got

    async def _list(self, scope: Hashable | None, wanted: set[Any], whole: bool) -> _Listed:
        """Page through ``scope``'s list for ``wanted`` (all of it, with ``whole``)."""
        assert self.hook is not None and self.settings is not None
        listed = _Listed(unfound=set(wanted))
        listing: dict[Any, dict[str, Any]] = {}
        page = 1
        while True:
            self.sent["list"] += 1
            try:
                result = await self.hook.alist_page(self._session, self.settings, self.kind, scope, page)
            except ApiRequestError as err:
                listed.error = err
                # Only what holds for the whole key (the rate limit, a server error, the deadline, a
                # refused key) is passed on to each unfound object; anything else a GET will tell.
                listed.shared = err.retryable or err.http_status == 401
                if page == 1 and not listed.shared:
                    self._list_off_until[scope] = asyncio.get_running_loop().time() + LIST_OFF_SECONDS
                    log.warning(
                        "Listing %s %ss%s failed (%s): reading them with GETs for %d s.",
                        self.kind.service,
                        self.kind.noun,
                        "" if scope is None else f" of {scope}",
                        err,
                        LIST_OFF_SECONDS,
                    )
                return listed
            if result.pages is not None:
                self._pages[scope] = result.pages
            for item in result.items:
                object_id = self.kind.listed_id(item)
                if object_id is None:
                    continue
                self._learn(object_id, scope if scope is not None else self.kind.scope_of(item))
                self._unlisted.discard(object_id)
                if whole:
                    listing[object_id] = item
                if object_id in listed.unfound:
                    listed.found[object_id] = item
                    listed.unfound.discard(object_id)
            if result.next_page is None:
                if result.pages is not None and page < result.pages:
                    # The answer says there are more pages but gives no way to them: not complete.
                    listed.error = self._not_listed(scope, f"page {page} of {result.pages} has no next page")
                    return listed
                self._unlisted |= listed.unfound  # a complete list did not show them
                listed.listing = listing if whole else None
                return listed
            if page >= MAX_PAGES:
                log.warning("Stopped listing %s %ss after %d pages.", self.kind.service, self.kind.noun, page)
                listed.error = self._not_listed(scope, f"more than {MAX_PAGES} pages")
                return listed
            if not whole:
                pages_left = (result.pages or page + 1) - page
                if not listed.unfound or pages_left >= len(listed.unfound):
                    return listed  # the rest costs no more one by one
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

    def _not_listed(
        self, scope: Hashable | None, why: str = "the list endpoint is not used"
    ) -> ApiRequestError:
        return ApiRequestError(
            service=self.kind.service,
            method="GET",
            path=f"(list of {self.kind.noun}s in {'the whole list' if scope is None else scope})",
            http_status=None,
            api_message=f"the list could not be read whole: {why}",
            retryable=True,
        )


async def read_object(
    subscription: Subscription, expected: Mapping[str, Any], *, timeout: float, interval: float | None = None
) -> dict[str, Any]:
    """
    One reading of a subscribed object, for a wait on ``expected``. A list item is confirmed with
    the object's own GET when it matches but is not in a GET's shape (Fluents numbers), so that
    what a sensor returns has one shape, and when it lacks a field the wait expects (list items
    are not documented to carry every field).
    """
    loop = asyncio.get_running_loop()
    ends = loop.time() + timeout
    reading = await subscription.read(timeout=timeout, interval=interval)
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


def prepare_hook(kind: ObjectKind, conn_id: str, hook_params: dict[str, Any] | None) -> BaseServiceHook:
    """
    Everything synchronous a poller needs before its first read, for a worker thread: the HTTP
    stack's imports (a first trigger would otherwise stall every other trigger of the triggerer),
    the connection lookup, and the key's masking. The one way every trigger of this provider builds its hook.
    """
    import aiohttp  # noqa: F401  (so that no poll imports it on the event loop)

    hook = kind.hook_class().from_hook_params(conn_id, hook_params)
    _ = hook.settings
    return hook


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
