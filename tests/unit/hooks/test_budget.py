"""The request budget on a fake clock: sliding-window slots, Retry-After for everyone, one budget per host and key."""

from __future__ import annotations

import pytest

from airflow_provider_fluents_tines.hooks.budget import RequestBudget, budget_for, forget_budgets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def take(budget: RequestBudget, clock: Clock) -> float:
    """Reserve a slot and, as a caller does, wait for it; return when the request started."""
    slot = budget.reserve()
    assert slot is not None
    clock.now += slot.wait
    return clock.now


def test_at_most_limit_starts_in_any_window():
    clock = Clock()
    budget = RequestBudget(3, 10.0, slack=0.0, clock=clock)
    starts = [take(budget, clock) for _ in range(8)]
    assert starts == [100, 100, 100, 110, 110, 110, 120, 120]
    for i, start in enumerate(starts):
        assert sum(1 for other in starts if start <= other < start + 10) <= 3, i


def test_slack_keeps_jitter_from_squeezing_one_more_into_the_servers_window():
    clock = Clock()
    budget = RequestBudget(2, 10.0, clock=clock)
    assert [take(budget, clock) for _ in range(3)] == [100, 100, 110.2]


def test_a_quiet_spell_frees_the_window():
    clock = Clock()
    budget = RequestBudget(2, 10.0, clock=clock)
    take(budget, clock)
    take(budget, clock)
    clock.now += 30
    assert budget.reserve().wait == 0


def test_retry_after_holds_back_every_later_request():
    clock = Clock()
    budget = RequestBudget(100, 60.0, clock=clock)
    budget.hold_off(7.5)
    assert budget.reserve().wait == 7.5
    assert budget.reserve().wait == 7.5
    budget.hold_off(1.0)  # a shorter hold never shortens a longer one
    assert budget.reserve().wait == 7.5


def test_one_budget_per_host_and_key_per_process_at_the_strictest_rate():
    forget_budgets()
    a = budget_for("https://t.tines.com/api", "key-1", 100)
    assert budget_for("https://T.tines.com:443", "key-1", 100) is a
    assert budget_for("t.tines.com", "key-1", 50) is a and (a.limit, a.window) == (50, 60.0)
    assert budget_for("https://t.tines.com", "key-1", 100) is a and a.limit == 50
    assert budget_for("https://t.tines.com", "key-2", 100) is not a
    assert budget_for("https://other.tines.com", "key-1", 100) is not a
    forget_budgets()
    assert budget_for("https://t.tines.com", "key-1", 100) is not a


def test_a_budget_holds_no_key():
    forget_budgets()
    budget_for("https://t.tines.com", "sk-live-secret-key", 100)
    from airflow_provider_fluents_tines.hooks import budget as module

    assert "sk-live-secret-key" not in repr(module._BUDGETS)


@pytest.mark.parametrize(("limit", "window"), [(0, 60.0), (5, 0.0)])
def test_nonsense_budgets_are_refused(limit, window):
    with pytest.raises(ValueError, match="limit >= 1 and window > 0"):
        RequestBudget(limit, window)


def test_a_refused_reservation_takes_nothing_so_demand_above_the_limit_cannot_starve_it():
    clock = Clock()
    budget = RequestBudget(100, 60.0, clock=clock)
    sent_per_minute = []
    for _minute in range(5):
        sent = 0
        for _poll in range(150):  # 150 pollers, each willing to wait at most 30 s for a slot
            slot = budget.reserve(max_wait=30.0)
            if slot is not None and slot.wait == 0:
                sent += 1
            elif slot is not None:
                budget.release(slot)  # the caller gave up (cancelled)
        sent_per_minute.append(sent)
        clock.now += 61.2
    assert sent_per_minute == [100] * 5


def test_a_retry_after_during_a_wait_voids_the_slot_and_is_waited_out():
    clock = Clock()
    budget = RequestBudget(1, 10.0, slack=0.0, clock=clock)
    assert budget.reserve().wait == 0  # the window is full until 110
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock.now += seconds
        if len(slept) == 1:
            budget.hold_off(30.0)  # a 429 elsewhere, while this caller waits for 110

    assert budget.acquire(within=100.0, sleep=sleep) is True
    assert clock.now >= 140.0  # it started after the hold, not at its first slot
    assert slept[0] == 10.0


def test_acquire_gives_up_without_taking_a_slot_when_none_comes_in_time():
    clock = Clock()
    budget = RequestBudget(1, 10.0, clock=clock)
    budget.reserve()
    assert budget.acquire(within=5.0, sleep=lambda s: None) is False
    clock.now += 10.3
    assert budget.reserve().wait == 0  # the refused call left nothing booked


def test_a_cancelled_async_wait_gives_its_slot_back():
    import asyncio

    budget = RequestBudget(1, 600.0)  # the real clock: the second slot is ten minutes away
    assert budget.reserve().wait == 0

    async def cancel_while_waiting():
        waiting = asyncio.ensure_future(budget.aacquire(within=900.0))
        await asyncio.sleep(0)  # it reserves and starts sleeping
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(cancel_while_waiting()) is True
    assert len(budget._starts) == 1  # only the first, used slot
