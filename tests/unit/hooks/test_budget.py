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
    clock.now += budget.reserve()
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
    assert budget.reserve() == 0


def test_retry_after_holds_back_every_later_request():
    clock = Clock()
    budget = RequestBudget(100, 60.0, clock=clock)
    budget.hold_off(7.5)
    assert budget.reserve() == 7.5
    assert budget.reserve() == 7.5
    budget.hold_off(1.0)  # a shorter hold never shortens a longer one
    assert budget.reserve() == 7.5


def test_one_budget_per_host_and_key_per_process():
    forget_budgets()
    a = budget_for("https://t.tines.com/api", "key-1", 100)
    assert budget_for("https://T.tines.com", "key-1", 100) is a
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
