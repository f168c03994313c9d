"""
Shared polling end to end: many ObjectStateTriggers (and a rollout's WaveStateTrigger) in one event
loop, as in a triggerer, read their objects through one shared poller per connection and kind
(``triggers/poller.py``) over real HTTP against the sandbox.

The sandbox's journal is the witness: which requests were sent (list pages or single GETs), how
many, and when. Each test runs its triggers in one ``asyncio.run`` (a new event loop, as a
triggerer process has), with short intervals and every wait bounded by ``asyncio.wait_for``, so a
defect fails a test instead of hanging it. The sandbox changes objects directly (not journaled).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest

from airflow_provider_fluents_tines.triggers.poller import active_pollers
from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger
from airflow_provider_fluents_tines.triggers.wave import WaveStateTrigger

STORY = 4021
ACTIONS = [90001, 90002, 90003, 90004, 90005, 90006]
NUMBERS = ["+14155550101", "+14155550102", "+14155550103"]
LIST_PATH = "/api/v1/actions"  # a Tines list read; its glob matches no single-action GET
GET_PATH = "/api/v1/actions/*"  # a single action's GET
INTERVAL = 0.3
# Every test's whole loop ends within this, or fails.
LOOP_DEADLINE = 20.0


def tines_trigger(
    action_id: int,
    expected: dict[str, Any],
    *,
    seconds: float = 6.0,
    conn_id: str = "tines_default",
    **kwargs: Any,
) -> ObjectStateTrigger:
    kwargs.setdefault("poke_interval", INTERVAL)
    return ObjectStateTrigger(
        conn_id=conn_id,
        object_kind="tines.action",
        object_id=action_id,
        expected=expected,
        end_time=time.time() + seconds,
        **kwargs,
    )


def number_trigger(number: str, expected: dict[str, Any], *, seconds: float = 6.0) -> ObjectStateTrigger:
    return ObjectStateTrigger(
        conn_id="fluents_default",
        object_kind="fluents.number",
        object_id=number,
        expected=expected,
        end_time=time.time() + seconds,
        poke_interval=INTERVAL,
    )


async def first_event(trigger: Any, timeout: float = 15.0) -> dict[str, Any]:
    """The trigger's one event, or a failed test after ``timeout`` seconds."""
    return (await asyncio.wait_for(trigger.run().__anext__(), timeout=timeout)).payload


def run_loop(main: Callable[[], Any]) -> Any:
    """``main()`` in a new event loop, bounded."""

    async def bounded() -> Any:
        return await asyncio.wait_for(main(), timeout=LOOP_DEADLINE)

    return asyncio.run(bounded())


def describe(state: Any, marker: str) -> Callable[[], None]:
    """What sets ``description`` to ``marker`` on ``ACTIONS`` at once."""

    def change() -> None:
        for action_id in ACTIONS:
            state.update_tines_action(action_id, {"description": marker})

    return change


def later(seconds: float, change: Callable[[], None]) -> asyncio.TimerHandle:
    return asyncio.get_running_loop().call_later(seconds, change)


def journal_summary(state: Any) -> list[tuple[float, str, str]]:
    entries = state.journal()
    start = entries[0]["time"] if entries else 0.0
    return [(round(e["time"] - start, 3), e["path"], e["query"]) for e in entries]


def query_of(entry: dict[str, Any]) -> dict[str, list[str]]:
    return parse_qs(entry["query"])


async def journaled(state: Any, path: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Wait (bounded) until the journal holds ``count`` requests of ``path``; return them."""
    ends = time.monotonic() + timeout
    while len(found := state.journal(method="GET", path=path)) < count:
        assert time.monotonic() < ends, f"no {count} requests of {path}: {journal_summary(state)}"
        await asyncio.sleep(0.02)
    return found


async def after_rounds(state: Any, path: str, count: int) -> None:
    """Wait (bounded) until ``count`` requests of ``path`` were answered: a fault added now hits the next round."""
    await journaled(state, path, count)
    await asyncio.sleep(0.05)  # the last one is answered well before the next round, 0.3 s later


# ---- Tines: many triggers of one story -----------------------------------------------------------


def test_six_triggers_of_one_story_share_list_reads(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    mark = "shared-polling-1"

    async def main():
        # Every other trigger knows its story (the sensor's first poke saw it); the others learn it.
        triggers = [
            tines_trigger(action_id, {"description": mark}, scope=STORY if index % 2 else None)
            for index, action_id in enumerate(ACTIONS)
        ]
        tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
        await journaled(state, LIST_PATH, 1)
        later(1.2, describe(state, mark))
        return await asyncio.gather(*tasks)

    events = run_loop(main)
    assert [e["status"] for e in events] == ["success"] * 6, events
    assert [e["object"]["id"] for e in events] == ACTIONS
    assert all(e["object"]["description"] == mark for e in events)

    requests = state.journal()
    lists = state.journal(method="GET", path=LIST_PATH)
    story_lists = [e for e in lists if query_of(e).get("story_id") == [str(STORY)]]
    tenant_lists = [e for e in lists if "story_id" not in query_of(e)]
    gets = state.journal(method="GET", path=GET_PATH)
    summary = journal_summary(state)
    assert len(story_lists) >= 4, summary  # one per round: the change came after several rounds
    assert all(query_of(e)["per_page"] == ["500"] for e in lists)
    # The first round: the first trigger of each scope to ask (no story, story 4021) is read at once
    # with a GET, before the others have subscribed; the tenant list is read once, for the
    # triggers that did not know their story. After that, one story list read per round, nothing else.
    assert len(gets) <= 2 and len(tenant_lists) <= 1, summary
    second_round = story_lists[1]["seq"]
    assert all(e["seq"] < second_round for e in gets + tenant_lists), summary
    assert [e["path"] for e in requests if e["seq"] >= second_round] == [LIST_PATH] * (len(story_lists) - 1)
    # Six triggers polling alone would have sent six GETs per round.
    assert len(requests) <= len(story_lists) + 3 < 6 * len(story_lists) / 2, summary


def test_a_lone_trigger_reads_its_action_with_gets_only(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state

    async def main():
        task = asyncio.ensure_future(first_event(tines_trigger(90005, {"disabled": False}, scope=STORY)))
        await journaled(state, GET_PATH, 1)
        later(0.8, lambda: state.update_tines_action(90005, {"disabled": False}))
        return await task

    event = run_loop(main)
    assert event["status"] == "success" and event["object"]["disabled"] is False
    requests = state.journal()
    assert len(requests) >= 3, journal_summary(state)  # it polled before the change
    assert {(e["method"], e["path"]) for e in requests} == {("GET", "/api/v1/actions/90005")}
    assert state.journal(path=LIST_PATH) == []


def test_a_cancelled_trigger_leaves_the_others_polling_and_nothing_runs_after_the_last(
    fluents_tines_sandbox,
):
    state = fluents_tines_sandbox.state
    mark = "shared-polling-3"

    async def main():
        triggers = [tines_trigger(a, {"description": mark}, scope=STORY) for a in ACTIONS[:4]]
        tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
        await journaled(state, LIST_PATH, 2)
        (poller,) = active_pollers().values()
        assert poller.users == 4
        tasks[0].cancel()  # as the triggerer does when the task is cleared
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        assert poller.users == 3 and list(active_pollers().values()) == [poller]
        cancelled_at = time.time()
        later(0.7, describe(state, mark))
        events = await asyncio.gather(*tasks[1:])
        assert active_pollers() == {}
        sent = len(state.journal())
        await asyncio.sleep(1.0)
        return cancelled_at, events, sent

    cancelled_at, events, sent = run_loop(main)
    assert [e["status"] for e in events] == ["success"] * 3
    assert [e["object"]["id"] for e in events] == ACTIONS[1:4]
    # Nothing was sent once every trigger had ended (the poller closed with the last one).
    assert len(state.journal()) == sent
    # After the cancellation the three others were still read together, with story list reads.
    after = [e for e in state.journal() if e["time"] > cancelled_at]
    assert after and {e["path"] for e in after} == {LIST_PATH}, journal_summary(state)


def test_each_trigger_keeps_its_own_deadline(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state

    async def main():
        short = tines_trigger(90001, {"name": "never"}, scope=STORY, seconds=1.2)
        long = tines_trigger(90002, {"description": "shared-polling-4"}, scope=STORY, seconds=6.0)
        extra = tines_trigger(90003, {"description": "shared-polling-4"}, scope=STORY, seconds=6.0)
        later(
            2.5,
            lambda: [state.update_tines_action(a, {"description": "shared-polling-4"}) for a in ACTIONS[1:3]],
        )

        async def timed(trigger):
            event = await first_event(trigger)
            return event, time.time()

        return await asyncio.gather(timed(short), timed(long), timed(extra)), short.end_time

    results, short_end = run_loop(main)
    (timeout, timed_out_at), (success, succeeded_at), (other, _) = results
    assert timeout["status"] == "timeout"
    assert timeout["diff"] == [{"field": "name", "current": "Receive phishing report", "requested": "never"}]
    assert short_end - 0.5 <= timed_out_at <= short_end + 0.5  # at its own deadline, not the others'
    assert success["status"] == "success" and other["status"] == "success"
    assert succeeded_at > timed_out_at + 0.5
    # The shorter wait left the poller when it ended: the others were still read with list reads
    # (two asks, one page), and none of its action after its deadline.
    late = [e for e in state.journal() if e["time"] > short_end + 0.1]
    assert late and {e["path"] for e in late} == {LIST_PATH}, journal_summary(state)


def test_an_action_missing_from_the_story_list_is_waited_for_or_fails_with_404(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    mark = "shared-polling-5"

    async def main():
        present = [tines_trigger(a, {"description": mark}, scope=STORY) for a in ACTIONS[:3]]
        waits = tines_trigger(90999, {"description": mark}, scope=STORY, seconds=2.5)
        fails = tines_trigger(90998, {"description": mark}, scope=STORY, fail_on_missing=True)
        tasks = [asyncio.ensure_future(first_event(t)) for t in [*present, waits, fails]]
        await journaled(state, LIST_PATH, 1)
        later(0.9, lambda: [state.update_tines_action(a, {"description": mark}) for a in ACTIONS[:3]])
        return await asyncio.gather(*tasks)

    *found, missing, failed = run_loop(main)
    summary = journal_summary(state)
    assert [e["status"] for e in found] == ["success"] * 3, found
    assert missing["status"] == "timeout", missing
    assert missing["wait_log"]["missing"] is True and missing["wait_log"]["failure"] is None
    assert missing["diff"] == []
    assert failed["status"] == "failed" and failed["http_status"] == 404 and failed["retryable"] is False
    assert "90998" in failed["message"]
    # The present actions were read from the story's list; each missing one got its own GET (a 404),
    # 90998 once (it failed at once), 90999 every round until its deadline.
    assert len(state.journal(path=LIST_PATH)) >= 3, summary
    assert len(state.journal(path="/api/v1/actions/90998")) == 1, summary
    assert len(state.journal(path="/api/v1/actions/90999")) >= 4, summary
    missing_paths = {"/api/v1/actions/90998", "/api/v1/actions/90999"}
    gets_of_present = [e for e in state.journal(path=GET_PATH) if e["path"] not in missing_paths]
    assert len(gets_of_present) <= 1, summary  # the first trigger to ask, read alone at once


def test_a_503_on_a_list_read_reaches_every_trigger_and_all_recover(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    mark = "shared-polling-6a"

    async def main():
        triggers = [tines_trigger(a, {"description": mark}, scope=STORY) for a in ACTIONS[:4]]
        tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
        await after_rounds(state, LIST_PATH, 1)  # the triggers now read in step: the next list fails
        state.add_fault(method="GET", path=LIST_PATH, status=503)
        later(1.5, lambda: [state.update_tines_action(a, {"description": mark}) for a in ACTIONS[:4]])
        return await asyncio.gather(*tasks)

    events = run_loop(main)
    summary = journal_summary(state)
    assert [e["status"] for e in events] == ["success"] * 4, events
    assert all(fault.count == 0 for fault in state.faults)
    lists = state.journal(path=LIST_PATH)
    failed = lists[1]  # the 503
    after = [e for e in state.journal() if e["seq"] > failed["seq"]]
    # The failed list's error reached every trigger: none was read with a GET of its own in that
    # round; all of them backed off (at least half a second, the first backoff's least) ...
    assert after and min(e["time"] for e in after) >= failed["time"] + 0.45, summary
    # ... and were read with list reads again afterwards.
    assert len(lists) >= 3, summary


def test_a_list_endpoint_answering_400_turns_bulk_reads_off_and_all_still_succeed(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    mark = "shared-polling-6b"

    async def main():
        triggers = [tines_trigger(a, {"description": mark}, scope=STORY) for a in ACTIONS[:4]]
        tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
        await after_rounds(state, LIST_PATH, 1)
        state.add_fault(method="GET", path=LIST_PATH, status=400)
        later(1.5, lambda: [state.update_tines_action(a, {"description": mark}) for a in ACTIONS[:4]])
        return await asyncio.gather(*tasks)

    events = run_loop(main)
    summary = journal_summary(state)
    assert [e["status"] for e in events] == ["success"] * 4, events
    lists = state.journal(path=LIST_PATH)
    assert len(lists) == 2, summary  # the good one, then the 400: no list read after it
    refused = lists[1]["seq"]
    after = [e["path"] for e in state.journal() if e["seq"] > refused]
    # From the 400 on, each action has its own GET, every round (the 400's round included).
    assert set(after) == {f"/api/v1/actions/{a}" for a in ACTIONS[:4]}, summary
    assert all(after.count(f"/api/v1/actions/{a}") >= 3 for a in ACTIONS[:4]), summary


def test_a_429_on_a_list_read_holds_back_every_request_of_the_key(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    mark = "shared-polling-7"

    async def main():
        triggers = [tines_trigger(a, {"description": mark}, scope=STORY) for a in ACTIONS[:4]]
        tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
        await after_rounds(state, LIST_PATH, 1)
        state.add_fault(method="GET", path=LIST_PATH, status=429, retry_after="1")
        later(0.8, lambda: [state.update_tines_action(a, {"description": mark}) for a in ACTIONS[:4]])
        return await asyncio.gather(*tasks)

    events = run_loop(main)
    summary = journal_summary(state)
    assert [e["status"] for e in events] == ["success"] * 4, events
    assert all(fault.count == 0 for fault in state.faults)
    refused = state.journal(path=LIST_PATH)[1]
    after = [e for e in state.journal() if e["seq"] > refused["seq"]]
    assert after, summary
    # No request of the key started before the Retry-After had passed (the hold counts from when
    # the 429 arrived, after the journal saw its request).
    assert min(e["time"] for e in after) >= refused["time"] + 1.0, summary
    assert {e["path"] for e in after} == {LIST_PATH}, summary


# ---- Fluents numbers, several connections --------------------------------------------------------


def test_number_matches_seen_in_the_list_are_confirmed_with_a_get(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    label = "Support line (shared polling)"

    async def main():
        triggers = [number_trigger(n, {"label": label}) for n in NUMBERS]
        tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
        await journaled(state, "/v1/numbers/list", 1)
        later(1.0, lambda: [state.update_fluents_number(n, {"label": label}) for n in NUMBERS])
        return await asyncio.gather(*tasks)

    events = run_loop(main)
    summary = journal_summary(state)
    assert [e["status"] for e in events] == ["success"] * 3, events
    for number, event in zip(NUMBERS, events, strict=True):
        shown = event["object"]
        assert shown["number"] == number and shown["label"] == label
        # As GET /v1/numbers shows it (the agent embedded), not as the list item (its id).
        assert isinstance(shown["inbound_agent"], dict), shown
        assert shown["inbound_agent"]["id"] == "agt_front_desk_v1" and "prompt" in shown["inbound_agent"]
    lists = state.journal(method="GET", path="/v1/numbers/list")
    assert len(lists) >= 3 and all(query_of(e)["size"] == ["100"] for e in lists), summary
    gets = state.journal(method="GET", path="/v1/numbers")
    # After the last list read (the one that showed the change) one confirming GET per number.
    confirming = [query_of(e)["phone_number"][0] for e in gets if e["seq"] > lists[-1]["seq"]]
    assert sorted(confirming) == NUMBERS, summary
    # Before it, at most the first trigger's own first read (alone, at once) was a GET.
    assert len(gets) - len(confirming) <= 1, summary


def test_each_connection_and_kind_has_its_own_poller(fluents_tines_sandbox, monkeypatch):
    state = fluents_tines_sandbox.state
    # The sandbox accepts one Tines key: the second connection has the same host and key, so the
    # two pollers share the key's request budget, as two connections on one key do in production.
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_TINES_OTHER", json.dumps(env))
    mark, label = "shared-polling-8", "Support line (shared polling)"

    async def main():
        triggers = [
            *(tines_trigger(a, {"description": mark}, scope=STORY) for a in ACTIONS[:3]),
            *(
                tines_trigger(a, {"description": mark}, scope=STORY, conn_id="tines_other")
                for a in ACTIONS[3:]
            ),
            *(number_trigger(n, {"label": label}) for n in NUMBERS[:2]),
        ]
        tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
        await journaled(state, LIST_PATH, 2)
        pollers = dict(active_pollers())
        users = {key: poller.users for key, poller in pollers.items()}

        def change():
            describe(state, mark)()
            for number in NUMBERS[:2]:
                state.update_fluents_number(number, {"label": label})

        later(1.0, change)
        events = await asyncio.gather(*tasks)
        return events, pollers, users, active_pollers()

    events, pollers, users, left = run_loop(main)
    summary = journal_summary(state)
    assert [e["status"] for e in events] == ["success"] * 8, events
    assert users == {
        ("tines_default", "tines.action", "{}"): 3,
        ("tines_other", "tines.action", "{}"): 3,
        ("fluents_default", "fluents.number", "{}"): 2,
    }
    assert left == {}
    tines_default = pollers["tines_default", "tines.action", "{}"]
    tines_other = pollers["tines_other", "tines.action", "{}"]
    # Each Tines poller read its own three actions with list reads of the story ...
    assert tines_default.sent["list"] >= 3 and tines_other.sent["list"] >= 3, summary
    assert tines_default.sent["get"] <= 1 and tines_other.sent["get"] <= 1, summary
    lists = state.journal(path=LIST_PATH)
    assert len(lists) == tines_default.sent["list"] + tines_other.sent["list"], summary
    # ... and drew on the one budget of the host and key.
    assert tines_default.settings.budget is tines_other.settings.budget
    numbers = pollers["fluents_default", "fluents.number", "{}"]
    assert numbers.sent["list"] == len(state.journal(path="/v1/numbers/list")) >= 3, summary


# ---- a triggerer restart, a rollout wave ---------------------------------------------------------


def rebuilt(trigger: Any) -> Any:
    """The trigger as a new triggerer makes it: its class imported by path, from its kwargs (as JSON)."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))


def test_triggers_rebuilt_in_a_new_event_loop_after_a_restart_succeed(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    mark = "shared-polling-10"
    triggers = [tines_trigger(a, {"description": mark}, scope=STORY, seconds=10.0) for a in ACTIONS[:4]]

    async def old_triggerer():
        tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
        await journaled(state, LIST_PATH, 2)
        pollers = list(active_pollers().values())
        for task in tasks:  # the triggerer stops: its triggers are cancelled mid-wait
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results), results
        return pollers, active_pollers()

    old_pollers, left = run_loop(old_triggerer)
    stopped_lists = state.journal(path=LIST_PATH)
    assert len(old_pollers) == 1 and old_pollers[0].users == 0 and left == {}
    stopped = state.journal()
    time.sleep(0.5)
    assert state.journal() == stopped  # nothing of the old loop polls on
    last_old = stopped[-1]["seq"]

    async def new_triggerer():
        again = [rebuilt(t) for t in triggers]
        assert [t.serialize() for t in again] == [t.serialize() for t in triggers]
        tasks = [asyncio.ensure_future(first_event(t)) for t in again]
        await journaled(state, LIST_PATH, len(stopped_lists) + 2)
        pollers = list(active_pollers().values())
        later(0.5, lambda: [state.update_tines_action(a, {"description": mark}) for a in ACTIONS[:4]])
        return await asyncio.gather(*tasks), pollers, active_pollers()

    events, new_pollers, left = run_loop(new_triggerer)
    summary = journal_summary(state)
    assert [e["status"] for e in events] == ["success"] * 4, events
    assert [e["object"]["id"] for e in events] == ACTIONS[:4]
    assert len(new_pollers) == 1 and new_pollers[0] is not old_pollers[0] and left == {}
    # The rebuilt triggers knew their story (the scope travels in the kwargs): list reads again,
    # from a new poller (its first read alone at once, with a GET, as in any new loop).
    new_reads = [e for e in state.journal() if e["seq"] > last_old]
    assert len([e for e in new_reads if e["path"] == LIST_PATH]) >= 3, summary
    assert len(new_reads) <= len([e for e in new_reads if e["path"] == LIST_PATH]) + 1, summary


def test_a_wave_and_sensors_of_one_story_share_list_reads(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    mark = "shared-polling-11"
    wave = WaveStateTrigger(
        objects=[
            {
                "key": f"tines.action:{a}",
                "conn_id": "tines_default",
                "object_kind": "tines.action",
                "object_id": a,
                "expected": {"description": mark},
                "scope": STORY,
            }
            for a in ACTIONS[:4]
        ],
        end_time=time.time() + 6.0,
        poke_interval=INTERVAL,
    )

    async def main():
        sensors = [tines_trigger(a, {"description": mark}, scope=STORY) for a in ACTIONS[4:]]
        tasks = [asyncio.ensure_future(first_event(t)) for t in [wave, *sensors]]
        await journaled(state, LIST_PATH, 1)
        later(1.2, describe(state, mark))
        return await asyncio.gather(*tasks)

    events = run_loop(main)
    summary = journal_summary(state)
    assert events[0] == {"status": "success"}, events
    assert [e["status"] for e in events[1:]] == ["success"] * 2, events
    lists = state.journal(method="GET", path=LIST_PATH)
    gets = state.journal(method="GET", path=GET_PATH)
    assert len(lists) >= 4 and all(query_of(e)["story_id"] == [str(STORY)] for e in lists), summary
    # Six objects polled for several rounds: one list read a round, GETs only in the first round.
    assert len(gets) <= 2 and all(e["seq"] < lists[1]["seq"] for e in gets), summary
