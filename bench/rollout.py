"""
Rollout: a ``Rollout`` of N Tines actions (each one's ``name`` set) in waves ``[1, 0.25, 1.0]``, run
with ``dag.test()`` against the sandbox with Tines' actions limit on (``limit`` requests per
``window`` seconds per key; a short window stands in for Tines' minute). The connection states the
same limit (``requests_per_minute``, ``rate_limit_window``), so the request budget paces every read
and write; verification runs deferrable (one trigger per wave, run inline by ``dag.test()``).

Reported from the sandbox journal: every ``/api/v1/actions`` request the rollout made (reads and
writes), the 429 answers (the sandbox's fixed-window rule replayed over the journal's times), the
server's windows and the most 429s in one, the run's total time against the minimum,
ceil(requests / limit) windows, and the ratio (target: within 1.10 x). Beside it, the rollout's
process CPU per object against a plain loop of ``TinesHook.get_object`` + ``update_object`` over
the same N objects (a second sandbox process, no limit), in the same run.

The request budget is per process: in ``dag.test()`` every task and the inline trigger share this
process, so this measures the in-process case.

Exits non-zero when the DAG run did not succeed or an object did not end in its desired state; a
missed speed target is only printed (met / MISSED).
Run: .venv/bin/python bench/rollout.py [--objects 1000] [--limit 100] [--window 2] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from _common import machine, print_table, sandbox_process, write_results

ROOT = Path(__file__).resolve().parent.parent
STORY_ID = 5001
FIRST_ID = 200001
WAVES = [1, 0.25, 1.0]


def isolated_airflow_home() -> Path:
    """
    A fresh Airflow home with its own sqlite DB, set before Airflow is imported. Always a new one
    (never the caller's AIRFLOW_HOME, whose DB the migration below could otherwise touch).
    """
    home = Path(tempfile.mkdtemp(prefix="bench-rollout-airflow-home-"))
    (home / "dags").mkdir()
    for name in [
        name for name in os.environ if name.startswith("AIRFLOW__") or name.startswith("AIRFLOW_CONN_")
    ]:
        del os.environ[name]
    from cryptography.fernet import Fernet

    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            # As deployments have: the plan's snapshots are sealed, as they would be there.
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        }
    )
    return home


def seed(objects: int) -> dict[str, Any]:
    """``objects`` Tines actions in one story, none linked."""
    return {
        "tines": {
            "info": {"name": "Bench tenant"},
            "actions": [
                {
                    "id": FIRST_ID + index,
                    "type": "Agents::EventTransformationAgent",
                    "name": f"Bench action {index}",
                    "story_id": STORY_ID,
                    "team_id": 112,
                    "options": {"mode": "message_only", "payload": {"index": index}},
                    "position": {"x": 0, "y": 90 * index},
                }
                for index in range(objects)
            ],
        }
    }


def desired_name(object_id: int) -> str:
    return f"Bench action {object_id - FIRST_ID} (rolled out)"


def replay_rate_limit(times: list[float], limit: int, window: float) -> list[dict[str, Any]]:
    """
    The sandbox's fixed-window limiter (``SandboxState.rate_limit_wait``) replayed over the
    journal's request times: a window starts at the first request after the last one ended, takes
    ``limit`` requests and answers the rest 429. One ``{start, answered, limited}`` per window.
    """
    windows: list[dict[str, Any]] = []
    for moment in times:
        if not windows or moment - windows[-1]["start"] >= window:
            windows.append({"start": moment, "answered": 0, "limited": 0})
        current = windows[-1]
        if current["answered"] >= limit:
            current["limited"] += 1
        else:
            current["answered"] += 1
    return windows


@contextmanager
def output_to(log: Path):
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``log`` for the block."""
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


def run_rollout(url: str, args: argparse.Namespace, object_ids: list[int], log: Path) -> dict[str, Any]:
    """
    Build the rollout DAG, run it with dag.test() (its task logs go to ``log``, as a worker's go to
    files), and return its state, timings and CPU.
    """
    from airflow.sdk import DAG

    from airflow_provider_fluents_tines.rollout import Rollout
    from airflow_provider_fluents_tines.sandbox import connection_env

    sys.path.insert(0, str(ROOT))
    from tests.dag_runner import run_dag, task_states

    # The connection states the sandbox's limit, as a user states Tines' (100 a minute by default).
    budget = {"requests_per_minute": args.limit, "rate_limit_window": args.window}
    os.environ.update(connection_env(url, extra=budget))
    changes = [
        {"kind": "tines.action", "id": object_id, "fields": {"name": desired_name(object_id)}}
        for object_id in object_ids
    ]
    with DAG(dag_id="bench_rollout", schedule=None, catchup=False) as dag:
        Rollout(
            changes=changes,
            waves=WAVES,
            deferrable=True,
            poke_interval=args.poke_interval,
            verify_timeout=30 * 60,
            settle_seconds=args.window,
        )
    cpu = time.process_time()
    started_at = time.time()
    started = time.monotonic()
    with output_to(log):
        dag_run = run_dag(dag)
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu
    ended_at = time.time()
    tasks = {}
    for ti in sorted(dag_run.get_task_instances(), key=lambda ti: (ti.start_date is None, ti.start_date)):
        tasks[ti.task_id] = {
            "state": str(ti.state),
            # Seconds from the start of dag.test() (the last try's start, after a deferral).
            "start_s": ti.start_date.timestamp() - started_at if ti.start_date else None,
            "end_s": ti.end_date.timestamp() - started_at if ti.end_date else None,
            "duration_s": (ti.end_date - ti.start_date).total_seconds()
            if ti.start_date and ti.end_date
            else None,
        }
    return {
        "state": str(dag_run.state),
        "task_states": {key: str(value) for key, value in task_states(dag_run).items()},
        "tasks": tasks,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "started_at": started_at,
        "ended_at": ended_at,
    }


def run_raw_loop(url: str, object_ids: list[int]) -> dict[str, Any]:
    """A plain loop of get_object + update_object per object, on its own connection (no limit)."""
    from airflow_provider_fluents_tines.hooks.tines import TinesHook
    from airflow_provider_fluents_tines.objects.tines import TINES_ACTION
    from airflow_provider_fluents_tines.sandbox import connection_env

    # A budget far above what the loop sends: nothing is paced, only the calls' own cost is measured.
    os.environ.update(
        connection_env(
            url,
            fluents_conn_id="bench_raw_fluents",
            tines_conn_id="bench_raw_tines",
            extra={"requests_per_minute": 10**9},
        )
    )
    hook = TinesHook("bench_raw_tines")
    hook.get_object(TINES_ACTION, object_ids[0])  # the session and the connection, outside the measure
    cpu = time.process_time()
    started = time.monotonic()
    for object_id in object_ids:
        hook.get_object(TINES_ACTION, object_id)
        hook.update_object(TINES_ACTION, object_id, {"name": desired_name(object_id)})
    elapsed = time.monotonic() - started
    return {"elapsed_s": elapsed, "cpu_s": time.process_time() - cpu, "requests": 2 * len(object_ids)}


def not_in_desired_state(url: str, object_ids: list[int]) -> list[int]:
    actions = requests.get(url + "/_sandbox/state", timeout=30).json()["tines"]["actions"]
    return [
        object_id
        for object_id in object_ids
        if (actions.get(str(object_id)) or {}).get("name") != desired_name(object_id)
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument(
        "--poke-interval", type=float, default=None, help="verification poll interval (default: the window)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="results file (default bench/results/rollout.json)"
    )
    args = parser.parse_args()
    if args.poke_interval is None:
        args.poke_interval = args.window
    home = isolated_airflow_home()
    object_ids = [FIRST_ID + index for index in range(args.objects)]
    seed_file = home / "seed.json"
    log = home / "dag-test.log"
    seed_file.write_text(json.dumps(seed(args.objects)))

    from airflow.utils import db

    migrate_started = time.monotonic()
    with output_to(log):
        db.initdb()
    print(f"Airflow metadata DB migrated in {time.monotonic() - migrate_started:.1f} s ({home})", flush=True)

    limited_flags = [
        "--rate-limit",
        "--rate-limit-max",
        str(args.limit),
        "--rate-limit-window",
        str(args.window),
    ]
    with sandbox_process("--seed", str(seed_file), *limited_flags) as url:
        print(f"Running the rollout of {args.objects} actions with dag.test(); its log: {log}", flush=True)
        run = run_rollout(url, args, object_ids, log)
        journal = requests.get(
            url + "/_sandbox/journal", params={"path": "/api/v1/actions*"}, timeout=60
        ).json()
        missing = not_in_desired_state(url, object_ids)
    with sandbox_process("--seed", str(seed_file)) as url:
        raw = run_raw_loop(url, object_ids)
        raw_missing = not_in_desired_state(url, object_ids)

    times = sorted(entry["time"] for entry in journal)
    reads = sum(1 for entry in journal if entry["method"] == "GET")
    # A list read is GET /api/v1/actions (with a query); an object read is GET /api/v1/actions/<id>.
    list_reads = sum(
        1 for entry in journal if entry["method"] == "GET" and entry["path"].rstrip("/").endswith("/actions")
    )
    writes = sum(1 for entry in journal if entry["method"] == "PUT")
    requests_made = len(journal)
    windows = replay_rate_limit(times, args.limit, args.window)
    limited = sum(window["limited"] for window in windows)
    max_limited = max((window["limited"] for window in windows), default=0)
    minimum_windows = math.ceil(requests_made / args.limit)
    minimum = minimum_windows * args.window
    span = times[-1] - times[0] if times else 0.0
    ratio = run["elapsed_s"] / minimum if minimum else float("nan")
    span_ratio = span / minimum if minimum else float("nan")
    # Time with no request at either end of the run: dag.test()'s start-up (serializing the DAG,
    # starting the plan task) before the first, the result task and the run's end after the last.
    before_first = times[0] - run["started_at"] if times else 0.0
    after_last = run["ended_at"] - times[-1] if times else 0.0
    partial = sum(1 for window in windows if window["answered"] < args.limit)
    rollout_cpu_ms = run["cpu_s"] / args.objects * 1000
    raw_cpu_ms = raw["cpu_s"] / args.objects * 1000

    rows = [
        ["objects", args.objects],
        ["DAG run", run["state"]],
        ["objects not in desired state", len(missing)],
        ["actions requests (all)", requests_made],
        ["reads (GET)", reads],
        ["list reads (verification)", list_reads],
        ["writes (PUT)", writes],
        ["requests beyond 3 per object", requests_made - 3 * args.objects],
        ["429 answers", limited],
        ["windows", len(windows)],
        ["windows not full", partial],
        ["429s per window (max)", max_limited],
        ["total time, dag.test() (s)", run["elapsed_s"]],
        ["first to last request (s)", span],
        ["start to first request (s)", before_first],
        ["last request to end (s)", after_last],
        [f"minimum, ceil(requests / limit) = {minimum_windows} windows (s)", minimum],
        ["ratio to the minimum", ratio],
        ["ratio, first to last request", span_ratio],
        ["rollout CPU per object (ms)", rollout_cpu_ms],
        ["raw get+update CPU per object (ms)", raw_cpu_ms],
        ["rollout CPU per request (ms)", run["cpu_s"] / requests_made * 1000 if requests_made else 0.0],
        ["raw CPU per request (ms)", raw["cpu_s"] / raw["requests"] * 1000],
        ["raw loop wall time, no limit (s)", raw["elapsed_s"]],
    ]
    print()
    print_table(["measure", "value"], rows)
    print()
    print_table(
        ["task", "state", "start (s)", "end (s)", "duration (s)"],
        [
            [task_id, task["state"], task["start_s"], task["end_s"], task["duration_s"]]
            for task_id, task in run["tasks"].items()
        ],
    )
    met = ratio <= 1.10
    print(f"\ntarget <= 1.10 x the minimum: {'met' if met else 'MISSED'} ({ratio:.3f})")
    print(f"target <= 1 429 per window: {'met' if max_limited <= 1 else 'MISSED'} ({max_limited})")

    results = {
        "objects": args.objects,
        "limit": args.limit,
        "window_s": args.window,
        "poke_interval_s": args.poke_interval,
        "waves": WAVES,
        "dag_run_state": run["state"],
        "task_states": run["task_states"],
        "tasks": run["tasks"],
        "objects_not_in_desired_state": len(missing),
        "requests": requests_made,
        "reads": reads,
        "list_reads": list_reads,
        "writes": writes,
        "responses_429": limited,
        "windows": len(windows),
        "max_429_per_window": max_limited,
        "elapsed_s": run["elapsed_s"],
        "request_span_s": span,
        "windows_not_full": partial,
        # Each server window: [seconds from the start of dag.test(), requests answered, 429s].
        "windows_detail": [
            [round(window["start"] - run["started_at"], 3), window["answered"], window["limited"]]
            for window in windows
        ],
        "before_first_request_s": before_first,
        "after_last_request_s": after_last,
        "minimum_windows": minimum_windows,
        "minimum_s": minimum,
        "ratio_to_minimum": ratio,
        "span_ratio_to_minimum": span_ratio,
        "rollout_cpu_s": run["cpu_s"],
        "rollout_cpu_per_object_ms": rollout_cpu_ms,
        "raw_cpu_s": raw["cpu_s"],
        "raw_cpu_per_object_ms": raw_cpu_ms,
        "raw_elapsed_s": raw["elapsed_s"],
        "raw_objects_not_in_desired_state": len(raw_missing),
    }
    if args.out is None:
        path = write_results("rollout", results)
    else:
        path = args.out
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": machine(), **results}, indent=2, default=str) + "\n")
    print(f"wrote {path}")

    failed = []
    if run["state"] != "success":
        failed.append(f"the DAG run ended {run['state']}: {run['task_states']}")
    if missing:
        failed.append(f"{len(missing)} object(s) not in their desired state, e.g. {missing[:5]}")
    if raw_missing:
        failed.append(f"the raw loop left {len(raw_missing)} object(s) not in their desired state")
    if failed:
        print("FAILED: " + "; ".join(failed) + f" (Airflow home kept: {home})", file=sys.stderr)
        return 1
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
