"""
The request budget: how many requests one process may start per window for one (API host, key).

One :class:`RequestBudget` per (host, key) per process, shared by every hook of a task and every
trigger of a triggerer: each request takes a slot first, and waits for it when the window is full.
A ``429`` with ``Retry-After`` holds every later request back, not only the one that got it. The
budget cannot see other processes: two workers (or a worker and a triggerer) on one key each keep
their own count, while the API counts them together.

Light to import (no HTTP stack); the clock is injectable for tests.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import urlsplit

#: The window of the ``requests_per_minute`` setting, in seconds (the ``rate_limit_window`` extra
#: shortens it, for a sandbox that stands a short window in for a minute).
DEFAULT_WINDOW = 60.0


class Slot(NamedTuple):
    """A reserved start: when (the budget's clock) and how long from the reservation."""

    at: float
    wait: float


class RequestBudget:
    """
    At most ``limit`` request starts in any ``window`` seconds (a sliding window), for one
    (host, key). Thread-safe: slots are reserved under a lock and waited for outside it.

    :param limit: requests per window.
    :param window: the window, in seconds.
    :param slack: a fraction of the window added between the first and the ``limit + 1``-th start,
        so that network jitter cannot squeeze ``limit + 1`` arrivals into the server's window.
    :param clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        limit: int,
        window: float = DEFAULT_WINDOW,
        *,
        slack: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
    ):
        if limit < 1 or window <= 0:
            raise ValueError(f"a budget needs limit >= 1 and window > 0, got {limit} per {window} s")
        self.limit = limit
        self.window = window
        self._slack = slack
        self._clock = clock
        self._starts: deque[float] = deque()
        self._held_until = 0.0
        self._lock = threading.Lock()

    def reserve(self, max_wait: float | None = None) -> Slot | None:
        """
        Take the next free slot; or take nothing and return None when it is more than ``max_wait``
        seconds away, so that a refused caller does not push every later slot back.
        """
        with self._lock:
            now = self._clock()
            at = max(now, self._held_until)
            if len(self._starts) >= self.limit:
                # The oldest of the last `limit` starts must be a whole window (and the slack) before this one.
                at = max(at, self._starts[-self.limit] + self.window * (1 + self._slack))
            if max_wait is not None and at - now > max_wait:
                return None
            self._starts.append(at)
            # Starts a whole window ago no longer constrain anything (the rest must stay, in case a
            # later slot is released).
            while self._starts[0] < now - self.window * (1 + self._slack):
                self._starts.popleft()
            return Slot(at, at - now)

    def release(self, slot: Slot) -> None:
        """Give back a slot that was not used (a cancelled wait, or one a ``Retry-After`` voided)."""
        with self._lock:
            if slot.at in self._starts:
                self._starts.remove(slot.at)

    def acquire(self, within: float, sleep: Callable[[float], object] = time.sleep) -> bool:
        """
        Wait for a slot that starts within ``within`` seconds and take it; False, having taken
        nothing, when there is none that soon. A ``Retry-After`` that arrives during the wait voids
        the slot: the hold is waited out and a fresh slot taken.
        """
        ends = self._clock() + within
        while (slot := self.reserve(max_wait=ends - self._clock())) is not None:
            sleep(slot.wait)
            hold = self._hold_after(slot, ends)
            if hold is None:
                return True
            if hold < 0:
                return False
            sleep(hold)
        return False

    async def aacquire(self, within: float) -> bool:
        """:meth:`acquire` for an event loop: the waits are ``asyncio.sleep``; a cancelled wait gives its slot back."""
        import asyncio

        ends = self._clock() + within
        while (slot := self.reserve(max_wait=ends - self._clock())) is not None:
            try:
                await asyncio.sleep(slot.wait)
            except asyncio.CancelledError:
                self.release(slot)
                raise
            hold = self._hold_after(slot, ends)
            if hold is None:
                return True
            if hold < 0:
                return False
            await asyncio.sleep(hold)
        return False

    def _hold_after(self, slot: Slot, ends: float) -> float | None:
        """
        After waiting for ``slot``: None when it may start now; else the slot is given back (a
        ``Retry-After`` arrived meanwhile) and the hold to wait out is returned, negative when it
        outlasts ``ends``.
        """
        held = self.held_for()
        if held <= 0:
            return None
        self.release(slot)
        return held if self._clock() + held <= ends else -1.0

    def held_for(self) -> float:
        """Seconds left of a server's ``Retry-After`` hold (0 when none)."""
        with self._lock:
            return max(0.0, self._held_until - self._clock())

    def hold_off(self, seconds: float) -> None:
        """The server asked to wait (``Retry-After``): no request starts before ``seconds`` from now."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))

    def tighten(self, limit: int, window: float) -> None:
        """Keep the stricter rate when connections on one host and key ask for different ones."""
        with self._lock:
            if limit / window < self.limit / self.window:
                self.limit, self.window = limit, window


_BUDGETS: dict[tuple[str, str], RequestBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def forget_budgets() -> None:
    """Drop every budget of this process (a test that starts from a quiet API, as a new process does)."""
    with _BUDGETS_LOCK:
        _BUDGETS.clear()


def _host(base_url: str) -> str:
    parts = urlsplit(base_url if "://" in base_url else f"https://{base_url}")
    default_port = {"https": 443, "http": 80}.get(parts.scheme)
    port = parts.port if parts.port not in (None, default_port) else None
    return (parts.hostname or "") + (f":{port}" if port else "")


def budget_for(base_url: str, api_key: str, limit: int, window: float = DEFAULT_WINDOW) -> RequestBudget:
    """
    This process's budget for (``base_url``'s host, ``api_key``): the same object for every hook and
    trigger that asks, at the strictest rate any of them asked for. The key is held only as a digest.
    """
    key = (_host(base_url), hashlib.sha256(api_key.encode()).hexdigest())
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None:
            budget = _BUDGETS[key] = RequestBudget(limit, window)
        else:
            budget.tighten(limit, window)
        return budget
