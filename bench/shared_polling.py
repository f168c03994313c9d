"""
Shared polling: N deferred sensors on one key in one event loop, as a triggerer runs them, each
waiting for a change the sandbox makes at a random moment, under a request budget of ``limit``
requests per ``window`` seconds (a short window stands in for a minute, as in bench/rollout.py).

- Tines: N ``ObjectStateTrigger`` on ``tines.action`` (``{"disabled": true}``), N actions spread over
  ``--stories`` stories of a tenant of ``--tenant`` actions (each waited-on story holds as many
  actions nobody waits on as waited ones). The triggers are given their story (``scope``), as a
  sensor that deferred after its first poke gives it; ``--tines-scope unknown`` leaves it out, so
  that the poller's first read is the whole tenant's list.
- Fluents: N ``ObjectStateTrigger`` on ``fluents.number`` (``{"inbound_agent": <the new agent>}``),
  N numbers; a match seen in the list is confirmed with one GET of the number.

Each is run twice against a fresh sandbox process with the same plan of changes: the shared poller
(``triggers/poller.py``: one list page per story, or per 100 numbers), and beside it a replica of
today's one-GET-per-trigger design (the trigger's loop before the poller, commit 77e34a3: each
trigger its own hook and session, one ``aget_object`` per poll through the same budget), stopped
some windows after the shared design's last event.

The changes are made by the sandbox process itself, on its state, at ``go + offset``: they are not
HTTP requests, so nothing but the sensors' requests is in the journal or counts against the key.
The sandbox process serves ``SandboxState`` with list reads that copy only the objects they answer
(the packaged one deep-copies the whole tenant on every list request, about 140 ms at 5,000
actions, which would make the emulator, not the client, the bottleneck); the answers are the same.

Measured from the sandbox's journal (the sensors' requests only): the most requests in any sliding
window of ``window`` seconds (must be <= limit), the 429 answers (the sandbox's fixed-window rule
replayed over the journal's times; the sandbox enforces it on Tines actions, and Fluents documents
no limit, so for Fluents it is what such a limiter would answer), list and single GETs; per sensor
the delay from its change (the sandbox's clock) to its event (this process's clock, same machine);
the client process's CPU (``time.process_time``) per reading a trigger got and per 1,000
sensor-poll-intervals (the seconds each sensor waited, over ``poke_interval``, summed); traced
memory per waiting sensor in a separate phase before the run (``--no-memory`` skips it); and the
triggers that went on after a cancel (before Python 3.12, ``asyncio.wait_for`` swallows a cancel
that lands as its reading is delivered: such a trigger is cancelled again, and counted).

Exits non-zero when the shared design breaks an invariant: a window over the budget, a 429, a
sensor that never saw its change. Lateness (a change seen later than 2 poll intervals) and the
replica's numbers are only reported. The triggers' log lines go to a file (its path is printed;
removed when the run passes).
Run: .venv/bin/python bench/shared_polling.py [--service both] [--sensors 1000] [--window 3] [--limit 60]
     [--poke-interval WINDOW] [--out bench/results/shared_polling.json]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from _common import isolate_airflow_home, machine, print_table, write_results

isolate_airflow_home()

FIRST_ACTION = 300001
FIRST_STORY = 8001
OLD_AGENT, NEW_AGENT = "agt_bench_before", "agt_bench_after"
CONNECTION = "4b1d2c3e-0f9a-4e8b-8c7d-6e5f4a3b2c1d"
TINES_CONN, FLUENTS_CONN = "bench_tines", "bench_fluents"
SHARED, REPLICA = "shared poller", "one GET per trigger"
FLUENTS_PAGE = 100  # numbers per list page (objects/fluents.py)
#: the triggers' polls in the current run: reads asked for, and readings got (not an error).
POLLS = {"asked": 0, "read": 0}


# ---- the sandbox process ------------------------------------------------------------------------------


def serve(spec_path: Path) -> None:
    """
    The sandbox for one run, in this process (started by the bench with ``--serve SPEC``): print
    the URL, wait for ``go <epoch>`` on stdin, make each change of the plan at ``go + offset`` on
    the state (no HTTP request), write when each was made to the spec's ``applied`` file, and stop
    at end of input.
    """
    import threading

    from airflow_provider_fluents_tines.sandbox import RateLimit, SandboxServer, SandboxState

    class BenchState(SandboxState):
        """The packaged state, with list reads that copy only what they answer (same answers)."""

        def tines_list(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
            with self._lock:
                now, lag = time.time(), self.visibility_lag
                shown = []
                for versions in self.tines_actions.values():
                    value = versions.visible(now, lag)
                    if value is not None and all(str(value.get(k)) == str(v) for k, v in filters.items()):
                        shown.append(copy.deepcopy(value))
                return shown

        def fluents_page(self, kind: str, page: int, size: int) -> dict[str, Any]:
            with self._lock:
                table = self.fluents_actions if kind == "actions" else self.numbers
                now, lag = time.time(), self.visibility_lag
                items = [v for v in (ver.visible(now, lag) for ver in table.values()) if v is not None]
                start = (page - 1) * size
                shown = copy.deepcopy(items[start : start + size])
            return {
                "items": shown,
                "page": page,
                "size": size,
                "has_more": start + size < len(items),
                "total": len(items),
                "total_is_estimated": False,
            }

    spec = json.loads(spec_path.read_text())
    state = BenchState(spec["seed"], rate_limit=RateLimit(True, spec["limit"], spec["window"]))
    server = SandboxServer(state=state).start()
    print(f"listening on {server.url}", flush=True)

    def change(go: float) -> None:
        applied = []
        for offset, kind, object_id, fields in sorted(spec["changes"], key=lambda c: c[0]):
            time.sleep(max(0.0, go + offset - time.time()))
            if kind == "tines.action":
                state.update_tines_action(object_id, fields)
            else:
                state.update_fluents_number(object_id, fields)
            applied.append([kind, object_id, time.time()])
        partial = Path(spec["applied"] + ".partial")
        partial.write_text(json.dumps(applied))
        partial.replace(spec["applied"])

    changer = None
    for line in sys.stdin:
        if line.startswith("go ") and changer is None:
            changer = threading.Thread(target=change, args=(float(line.split()[1]),), daemon=True)
            changer.start()
    server.stop()


class BenchSandbox:
    """A sandbox process for one run (see :func:`serve`)."""

    def __init__(self, seed: dict[str, Any], changes: list[list[Any]], limit: int, window: float):
        self.dir = Path(tempfile.mkdtemp(prefix="bench-shared-polling-"))
        self.applied = self.dir / "applied.json"
        spec = {
            "seed": seed,
            "changes": changes,
            "limit": limit,
            "window": window,
            "applied": str(self.applied),
        }
        (self.dir / "spec.json").write_text(json.dumps(spec))
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.dir / "spec.json")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            self.close()
            raise RuntimeError(f"the sandbox process did not start: {line!r}")
        self.url = line.split()[-1]

    def go(self, at: float) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"go {at!r}\n")
        self.process.stdin.flush()

    def applied_times(self, timeout: float) -> dict[Any, float]:
        """When the sandbox made each change, by object id (waits for the last change)."""
        deadline = time.monotonic() + timeout
        while not self.applied.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not report its changes")
            time.sleep(0.05)
        return {object_id: at for _, object_id, at in json.loads(self.applied.read_text())}

    def journal(self, path: str) -> list[dict[str, Any]]:
        return requests.get(self.url + "/_sandbox/journal", params={"path": path}, timeout=120).json()

    def clear_journal(self) -> None:
        requests.delete(self.url + "/_sandbox/journal", timeout=30).raise_for_status()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def output_to(log: Path) -> Iterator[None]:
    """
    This process's stdout and stderr (file descriptors 1 and 2) to ``log`` for the block: the
    triggers log every poll, as they would into a triggerer's log files (bench/rollout.py does the same).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("ab") as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


# ---- the seeds and the plan of changes ----------------------------------------------------------------


def tines_setup(args: argparse.Namespace) -> dict[str, Any]:
    """
    A tenant of ``tenant`` actions in stories of ``story_size``: the first ``stories`` stories hold
    the waited-on actions (half of each story), the rest are other stories of the tenant.
    """
    per_story = math.ceil(args.sensors / args.stories)
    story_size = 2 * per_story
    tenant = max(args.tenant, args.stories * story_size)
    actions: list[dict[str, Any]] = []
    waited: list[tuple[int, int]] = []
    for index in range(tenant):
        story, position = divmod(index, story_size)
        action_id = FIRST_ACTION + index
        actions.append(
            {
                "id": action_id,
                "type": "Agents::EventTransformationAgent",
                "name": f"Bench action {index}",
                "story_id": FIRST_STORY + story,
                "team_id": 112,
                "options": {"mode": "message_only", "payload": {"index": index}},
                "position": {"x": 0, "y": 90 * position},
                "disabled": False,
            }
        )
        if story < args.stories and position < per_story and len(waited) < args.sensors:
            waited.append((action_id, FIRST_STORY + story))
    return {
        "seed": {"tines": {"info": {"name": "Bench tenant"}, "actions": actions}},
        "targets": waited,  # (object id, scope)
        "kind": "tines.action",
        "expected": {"disabled": True},
        "fields": {"disabled": True},
        "conn_id": TINES_CONN,
        "journal_path": "/api/v1/actions*",
        "list_path": "/api/v1/actions",
        "tenant": tenant,
        "stories": math.ceil(tenant / story_size),
        "story_size": story_size,
    }


def fluents_setup(args: argparse.Namespace) -> dict[str, Any]:
    """``sensors`` numbers on the old agent; each is moved to the new agent."""
    agents = [
        {"id": agent, "user_id": "usr_bench", "name": name}
        for agent, name in ((OLD_AGENT, "Bench agent (before)"), (NEW_AGENT, "Bench agent (after)"))
    ]
    numbers = [
        {
            "id": f"00000000-0000-4000-8000-{index:012d}",
            "user_id": "usr_bench",
            "number": f"+141560{index:05d}",
            "active": True,
            "label": f"Bench line {index}",
            "description": None,
            "outbound_only": False,
            "inbound_agent": OLD_AGENT,
            "inbound_agent_name": "Bench agent (before)",
            "example_context": {"index": index},
            "telephony_provider": "twilio",
            "telephony_account_connection": CONNECTION,
        }
        for index in range(args.sensors)
    ]
    connection = {
        "id": CONNECTION,
        "user_id": "usr_bench",
        "type": "account_connection_twilio",
        "credentials": {"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": "********"},
        "steering_pool": [],
        "account_supports_any_caller_id": False,
    }
    return {
        "seed": {"fluents": {"agents": agents, "account_connections": [connection], "numbers": numbers}},
        "targets": [(number["number"], None) for number in numbers],
        "kind": "fluents.number",
        "expected": {"inbound_agent": NEW_AGENT},
        "fields": {"inbound_agent": NEW_AGENT},
        "conn_id": FLUENTS_CONN,
        "journal_path": "/v1/numbers*",
        "list_path": "/v1/numbers/list",
    }


def default_spread(service: str, args: argparse.Namespace) -> int:
    """
    Windows over which the changes are spread. Tines: 10. Fluents: twice the windows that the
    confirming GETs (one per change) need at the budget left beside one list read per window.
    """
    if service == "tines":
        return 10
    pages = math.ceil(args.sensors / FLUENTS_PAGE)
    return max(10, math.ceil(2 * args.sensors / max(1, args.limit - pages)))


# ---- the two designs ----------------------------------------------------------------------------------


def replica_class() -> type:
    """
    ``ObjectStateTrigger`` with the polling loop it had before the shared poller (commit 77e34a3):
    its own hook (prepared in a thread) and aiohttp session, one ``aget_object`` per poll through
    the process's request budget, sleeping ``poke_interval`` between polls.
    """
    from airflow.triggers.base import TriggerEvent
    from asgiref.sync import sync_to_async

    from airflow_provider_fluents_tines.exceptions import ApiRequestError
    from airflow_provider_fluents_tines.redaction import redact
    from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger, _failed, _timed_out
    from airflow_provider_fluents_tines.wait_log import WaitLog

    class OneGetPerTrigger(ObjectStateTrigger):
        async def _wait(self) -> TriggerEvent:
            hook = await sync_to_async(self._prepare_hook)()
            settings = hook.settings
            policy = settings.retry_policy
            unmatched = failures = 0
            last_diff: list[Any] = []
            wait_log = WaitLog.from_dict(self.wait_log)
            async with hook.async_session(settings) as session:
                while True:
                    delay = self._interval(unmatched + 1)
                    left = self.end_time - self._now()
                    if left <= 0:
                        return _timed_out(last_diff, wait_log)
                    try:
                        POLLS["asked"] += 1
                        current = await hook.aget_object(
                            session, settings, self.kind, self.object_id, timeout=left
                        )
                        POLLS["read"] += 1
                    except ApiRequestError as err:
                        if err.http_status == 404 and not self.fail_on_missing:
                            wait_log.saw_missing()
                        elif not err.retryable:
                            return _failed(str(err), err.http_status, retryable=False)
                        else:
                            wait_log.failed(str(err))
                            failures += 1
                            delay = max(delay, policy.delay(failures, err.retry_after))
                            self.log.warning("%s; polling again in %.1f s", err, delay)
                    else:
                        failures = 0
                        found = self.kind.state_differences(current, self.expected)
                        if not found:
                            return TriggerEvent({"status": "success", "object": redact(current)})
                        wait_log.saw(found)
                        unmatched += 1
                        last_diff = [d.as_dict() for d in found]
                        self.log.info("Still waiting on %s", ", ".join(d["field"] for d in last_diff))
                    remaining = self.end_time - self._now()
                    if remaining < delay:
                        await self._sleep(max(0.0, remaining))
                        return _timed_out(last_diff, wait_log)
                    await self._sleep(delay)

    return OneGetPerTrigger


def count_shared_polls() -> None:
    """Count the shared design's polls: ``ObjectStateTrigger`` reads through ``read_object``."""
    from airflow_provider_fluents_tines.triggers import state

    if getattr(state.read_object, "counted", False):
        return
    read_object = state.read_object

    async def counted(*args: Any, **kwargs: Any) -> Any:
        POLLS["asked"] += 1
        current = await read_object(*args, **kwargs)
        POLLS["read"] += 1
        return current

    counted.counted = True  # type: ignore[attr-defined]
    state.read_object = counted


def trigger_maker(design: str, setup: dict[str, Any], args: argparse.Namespace) -> Callable[..., Any]:
    from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger

    count_shared_polls()
    cls = ObjectStateTrigger if design == SHARED else replica_class()

    def make(object_id: Any, scope: Any, end_time: float) -> Any:
        return cls(
            conn_id=setup["conn_id"],
            object_kind=setup["kind"],
            object_id=object_id,
            expected=setup["expected"],
            end_time=end_time,
            poke_interval=args.poke_interval,
            scope=scope if args.tines_scope == "known" else None,
        )

    return make


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> int:
    """
    Cancel ``tasks`` and wait until they end, cancelling again those that go on; return how many
    went on after the first cancel (a cancel that lands as a reading is delivered is swallowed by
    ``asyncio.wait_for`` before Python 3.12, and the trigger keeps polling).
    """
    if not tasks:
        return 0
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=2.0)
    survived = len(pending)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    return survived


async def memory_phase(
    make: Callable[..., Any], targets: list[tuple[Any, Any]], seconds: float
) -> tuple[float, int]:
    """
    Traced bytes per trigger once every trigger has started and waits (nothing has changed yet),
    and how many triggers went on after the cancel that ends the phase.
    """
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    end_time = time.time() + 3600
    tasks = [asyncio.create_task(anext(make(oid, scope, end_time).run())) for oid, scope in targets]
    await asyncio.sleep(seconds)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    survived = await cancel_all(tasks)
    return used / len(targets), survived


async def wait_phase(
    make: Callable[..., Any],
    targets: list[tuple[Any, Any]],
    sandbox: BenchSandbox,
    lead: float,
    end_time: float | None,
    cutoff: float | None,
) -> dict[str, Any]:
    """
    Start every trigger, tell the sandbox to start its changes ``lead`` seconds later, and wait for
    every event (each trigger gives up at ``end_time``), or cancel what is left at ``cutoff``.
    """
    events: dict[Any, tuple[float, dict[str, Any]]] = {}

    async def one(object_id: Any, scope: Any, give_up_at: float) -> None:
        event = await anext(make(object_id, scope, give_up_at).run())
        events[object_id] = (time.time(), event.payload)

    POLLS.update(asked=0, read=0)
    cpu = time.process_time()
    started = time.time()
    go = started + lead
    sandbox.go(go)
    give_up_at = end_time if end_time is not None else started + 3600
    tasks = [asyncio.create_task(one(oid, scope, give_up_at)) for oid, scope in targets]
    stop = cutoff if cutoff is not None else give_up_at + lead
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, stop - time.time()))
    ended = time.time() if pending else max((at for at, _ in events.values()), default=started)
    cpu = time.process_time() - cpu
    polls = dict(POLLS)
    survived = await cancel_all(list(pending))
    return {
        "events": events,
        "started": started,
        "go": go,
        "ended": ended,
        "cpu_s": cpu,
        "polls": polls,
        "cancelled": len(pending),
        "went_on_after_cancel": survived,
    }


# ---- measures -----------------------------------------------------------------------------------------


def most_in_window(times: list[float], window: float) -> int:
    """The most requests whose arrival falls in any half-open span of ``window`` seconds."""
    most, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


def replay_429s(times: list[float], limit: int, window: float) -> int:
    """The sandbox's fixed-window rule (``SandboxState.rate_limit_wait``) over the journal's times."""
    limited, start, answered = 0, None, 0
    for moment in times:
        if start is None or moment - start >= window:
            start, answered = moment, 0
        if answered >= limit:
            limited += 1
        else:
            answered += 1
    return limited


def per_1000(amount: float, count: float) -> float | None:
    return amount / count * 1000 if count else None


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def measure(
    setup: dict[str, Any],
    run: dict[str, Any],
    journal: list[dict[str, Any]],
    applied: dict[Any, float],
    args: argparse.Namespace,
    memory: float | None,
) -> dict[str, Any]:
    from airflow_provider_fluents_tines.hooks.base import USER_AGENT

    ours = [entry for entry in journal if entry["headers"].get("user-agent") == USER_AGENT]
    times = sorted(entry["time"] for entry in ours)
    lists = sum(1 for entry in ours if entry["path"] == setup["list_path"])
    targets = setup["targets"]
    delays, statuses = [], {"success": 0, "timeout": 0, "failed": 0}
    get_shaped = 0
    for object_id, _ in targets:
        if object_id not in run["events"]:
            continue
        at, payload = run["events"][object_id]
        statuses[payload["status"]] = statuses.get(payload["status"], 0) + 1
        if payload["status"] == "success":
            delays.append(at - applied[object_id])
            if isinstance(payload["object"].get("inbound_agent"), dict):
                get_shaped += 1  # a GET's shape: the agent embedded (list items give its id)
    interval = args.poke_interval
    waited = sum(
        (run["events"][oid][0] if oid in run["events"] else run["ended"]) - run["started"]
        for oid, _ in targets
    )
    sensor_intervals = waited / interval
    seen = statuses["success"]
    late = sum(1 for delay in delays if delay > 2 * interval)
    span = times[-1] - times[0] if times else 0.0
    result = {
        "sensors": len(targets),
        "requests": len(ours),
        "list_reads": lists,
        "single_gets": len(ours) - lists,
        "requests_not_ours": len(journal) - len(ours),
        "max_requests_per_window": most_in_window(times, args.window),
        "responses_429": replay_429s(times, args.limit, args.window),
        "requests_per_window_mean": len(ours) / (span / args.window) if span else None,
        "events": statuses,
        "saw_change": seen,
        "not_seen": len(targets) - seen,
        "late_over_2_intervals": late,
        "delay_max_s": max(delays) if delays else None,
        "delay_p95_s": percentile(delays, 0.95),
        "delay_p50_s": percentile(delays, 0.5),
        "delay_max_intervals": max(delays) / interval if delays else None,
        "duration_s": run["ended"] - run["started"],
        "first_change_s": min(applied.values()) - run["started"] if applied else None,
        "last_change_s": max(applied.values()) - run["started"] if applied else None,
        "cpu_s": run["cpu_s"],
        "sensor_intervals": sensor_intervals,
        "polls_asked": run["polls"]["asked"],
        "polls_read": run["polls"]["read"],
        "cpu_s_per_1000_sensor_intervals": per_1000(run["cpu_s"], sensor_intervals),
        "cpu_s_per_1000_readings": per_1000(run["cpu_s"], run["polls"]["read"]),
        "requests_per_1000_sensor_intervals": per_1000(len(ours), sensor_intervals),
        "memory_kib_per_sensor": memory / 1024 if memory is not None else None,
        "cancelled_at_the_end": run["cancelled"],
        "went_on_after_cancel": run["went_on_after_cancel"],
    }
    if setup["kind"] == "fluents.number":
        result["events_in_get_shape"] = get_shaped
    return result


# ---- one service --------------------------------------------------------------------------------------


def run_service(service: str, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    from airflow_provider_fluents_tines.hooks.budget import forget_budgets
    from airflow_provider_fluents_tines.sandbox import connection_env

    setup = tines_setup(args) if service == "tines" else fluents_setup(args)
    spread_windows = (args.tines_spread if service == "tines" else args.fluents_spread) or default_spread(
        service, args
    )
    spread = spread_windows * args.window
    rng = random.Random(args.random_seed)
    changes = [
        [rng.uniform(0, spread), setup["kind"], object_id, setup["fields"]]
        for object_id, _ in setup["targets"]
    ]
    lead = args.poke_interval  # every sensor has polled once before the first change
    results: dict[str, Any] = {}
    shared_duration = None
    for design in (SHARED, REPLICA):
        forget_budgets()
        sandbox = BenchSandbox(setup["seed"], changes, args.limit, args.window)
        try:
            budget = {"requests_per_minute": args.limit, "rate_limit_window": args.window}
            os.environ.update(
                connection_env(
                    sandbox.url, tines_conn_id=TINES_CONN, fluents_conn_id=FLUENTS_CONN, extra=budget
                )
            )
            make = trigger_maker(design, setup, args)
            memory = None
            went_on = None
            if args.memory:
                seconds = 1.5 * args.poke_interval
                with output_to(log):
                    memory, went_on = asyncio.run(memory_phase(make, setup["targets"], seconds))
                time.sleep(args.window)  # the cancelled polls' slots age out of the budget
                sandbox.clear_journal()
            print(f"{service}, {design}: {len(setup['targets'])} sensors...", flush=True)
            if design == SHARED:
                end_time = time.time() + lead + spread + args.grace * args.poke_interval
                with output_to(log):
                    run = asyncio.run(wait_phase(make, setup["targets"], sandbox, lead, end_time, None))
                shared_duration = run["ended"] - run["started"]
            else:
                assert shared_duration is not None
                cutoff = time.time() + shared_duration + args.replica_extra * args.window
                with output_to(log):
                    run = asyncio.run(wait_phase(make, setup["targets"], sandbox, lead, None, cutoff))
            applied = sandbox.applied_times(timeout=spread + 60)
            journal = sandbox.journal(setup["journal_path"])
        finally:
            sandbox.close()
        results[design] = measure(setup, run, journal, applied, args, memory)
        results[design]["memory_phase_went_on_after_cancel"] = went_on
    return {
        "kind": setup["kind"],
        "tenant_actions": setup.get("tenant"),
        "tenant_stories": setup.get("stories"),
        "story_size": setup.get("story_size"),
        "waited_stories": args.stories if service == "tines" else None,
        "scope": args.tines_scope if service == "tines" else None,
        "spread_windows": spread_windows,
        "designs": results,
    }


def breaches(service: str, shared: dict[str, Any], limit: int) -> list[str]:
    found = []
    if shared["max_requests_per_window"] > limit:
        found.append(f"{service}: {shared['max_requests_per_window']} requests in one window (limit {limit})")
    if shared["responses_429"]:
        found.append(f"{service}: {shared['responses_429']} 429 answers")
    if shared["not_seen"]:
        found.append(f"{service}: {shared['not_seen']} sensor(s) never saw their change ({shared['events']})")
    if shared["requests_not_ours"]:
        found.append(
            f"{service}: {shared['requests_not_ours']} request(s) in the journal not from the sensors"
        )
    return found


def print_service(service: str, result: dict[str, Any], args: argparse.Namespace) -> None:
    designs = result["designs"]

    def row(name: str, key: str, scale: float = 1.0) -> list[Any]:
        cells: list[Any] = [name]
        for design in (SHARED, REPLICA):
            value = designs[design].get(key)
            cells.append(value * scale if isinstance(value, float) else value if value is not None else "-")
        return cells

    print(
        f"\n{service}: {args.sensors} sensors, {args.limit} requests per {args.window:g} s window, "
        f"poke_interval {args.poke_interval:g} s, changes over {result['spread_windows']} windows"
    )
    rows = [
        row("requests", "requests"),
        row("  list reads", "list_reads"),
        row("  single GETs", "single_gets"),
        row("most requests in one window", "max_requests_per_window"),
        row("429 answers", "responses_429"),
        row("sensors that saw their change", "saw_change"),
        row("  not seen by the end", "not_seen"),
        row("  later than 2 poll intervals", "late_over_2_intervals"),
        row("delay, change to event, max (s)", "delay_max_s"),
        row("delay p95 (s)", "delay_p95_s"),
        row("delay p50 (s)", "delay_p50_s"),
        row("run time (s)", "duration_s"),
        row("CPU (s)", "cpu_s"),
        row("polls (readings a trigger got)", "polls_read"),
        row("  asked, errors included", "polls_asked"),
        row("CPU s per 1,000 sensors per interval", "cpu_s_per_1000_sensor_intervals"),
        row("CPU s per 1,000 readings", "cpu_s_per_1000_readings"),
        row("requests per 1,000 sensors per interval", "requests_per_1000_sensor_intervals"),
        row("traced KiB per waiting sensor", "memory_kib_per_sensor"),
        row("triggers that went on after a cancel", "went_on_after_cancel"),
        row("  ... in the memory phase", "memory_phase_went_on_after_cancel"),
    ]
    if "events_in_get_shape" in designs[SHARED]:
        rows.append(row("events with a GET's shape", "events_in_get_shape"))
    print_table(["measure", SHARED, f"{REPLICA} (replica)"], rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", choices=("tines", "fluents", "both"), default="both")
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--window", type=float, default=3.0, help="seconds standing in for 60 s")
    parser.add_argument("--limit", type=int, default=60, help="requests per window (the budget)")
    parser.add_argument("--poke-interval", type=float, default=None, help="default: one window")
    parser.add_argument("--tenant", type=int, default=5000, help="Tines actions in the tenant")
    parser.add_argument("--stories", type=int, default=20, help="Tines stories holding the waited actions")
    parser.add_argument("--tines-scope", choices=("known", "unknown"), default="known")
    parser.add_argument("--tines-spread", type=int, default=None, help="windows the changes span")
    parser.add_argument("--fluents-spread", type=int, default=None, help="windows the changes span")
    parser.add_argument(
        "--grace", type=float, default=10, help="poll intervals a sensor waits past the last change"
    )
    parser.add_argument(
        "--replica-extra", type=float, default=5, help="windows the replica runs past the shared run"
    )
    parser.add_argument("--random-seed", type=int, default=20261207)
    parser.add_argument(
        "--no-memory", dest="memory", action="store_false", help="skip the traced-memory phase"
    )
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/shared_polling.json")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return 0
    if args.poke_interval is None:
        args.poke_interval = args.window
    # What the first trigger would import in a thread: outside the measured CPU for both designs.
    import aiohttp  # noqa: F401

    import airflow_provider_fluents_tines.hooks.fluents
    import airflow_provider_fluents_tines.hooks.tines
    import airflow_provider_fluents_tines.triggers.state  # noqa: F401

    services = ["tines", "fluents"] if args.service == "both" else [args.service]
    log = Path(tempfile.mkdtemp(prefix="bench-shared-polling-log-")) / "triggers.log"
    print(f"The triggers' log: {log}", flush=True)
    results = {service: run_service(service, args, log) for service in services}
    failures = [
        f for service in services for f in breaches(service, results[service]["designs"][SHARED], args.limit)
    ]
    for service in services:
        print_service(service, results[service], args)
    for service in services:
        late = results[service]["designs"][SHARED]["late_over_2_intervals"]
        print(
            f"{service}: every change seen within 2 poll intervals: {'met' if not late else f'MISSED ({late} late)'}"
        )
    output = {
        "sensors": args.sensors,
        "limit": args.limit,
        "window_s": args.window,
        "poke_interval_s": args.poke_interval,
        "random_seed": args.random_seed,
        "services": results,
        "invariants_held": not failures,
        "failures": failures,
    }
    if args.out is None:
        path = write_results("shared_polling", output)
    else:
        path = args.out
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": machine(), **output}, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    if failures:
        print("FAILED: " + "; ".join(failures) + f" (the triggers' log kept: {log})", file=sys.stderr)
        return 1
    shutil.rmtree(log.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
