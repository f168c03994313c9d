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

#: The window of the ``requests_per_minute`` setting, in seconds (the ``rate_limit_window`` extra
#: shortens it, for a sandbox that stands a short window in for a minute).
DEFAULT_WINDOW = 60.0


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
        self._spacing = window * (1 + slack)
        self._clock = clock
        self._starts: deque[float] = deque(maxlen=limit)
        self._held_until = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next free slot; return the seconds to wait before starting the request (0: now)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._held_until)
            if len(self._starts) == self.limit:
                # The oldest of the last `limit` starts must be a whole window before this one.
                slot = max(slot, self._starts[0] + self._spacing)
            self._starts.append(slot)
            return slot - now

    def hold_off(self, seconds: float) -> None:
        """The server asked to wait (``Retry-After``): no slot starts before ``seconds`` from now."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))


_BUDGETS: dict[tuple[str, str, int, float], RequestBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def forget_budgets() -> None:
    """Drop every budget of this process (a test that starts from a quiet API, as a new process does)."""
    with _BUDGETS_LOCK:
        _BUDGETS.clear()


def budget_for(base_url: str, api_key: str, limit: int, window: float = DEFAULT_WINDOW) -> RequestBudget:
    """
    This process's budget for (``base_url``'s host, ``api_key``) at ``limit`` per ``window``: the same
    object for every hook and trigger that asks. The key is held only as a digest.
    """
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    host = base_url.split("://", 1)[-1].split("/", 1)[0].lower()
    key = (host, digest, limit, window)
    with _BUDGETS_LOCK:
        if key not in _BUDGETS:
            _BUDGETS[key] = RequestBudget(limit, window)
        return _BUDGETS[key]
