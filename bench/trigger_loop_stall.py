"""
How long a trigger's start blocks the triggerer's event loop: the largest stall of the loop while a
first trigger (in a fresh interpreter that has loaded what a triggerer loads, as in a new triggerer
process) loads its hook, reads its connection and polls once. A ticker coroutine wakes every millisecond; the largest lateness of a
wake-up is the stall every other trigger of the process would have suffered.

Side by side, in fresh interpreters, alternating:
- this provider: the synchronous preparation (imports, connection lookup, masking) runs off the loop;
- the same preparation on the loop (how the trigger worked before; what Airflow warned about).

Run: .venv/bin/python bench/trigger_loop_stall.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

from _common import isolate_airflow_home, print_table, sandbox_process, write_results

TARGET_MS = 50.0

_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    # What a triggerer process has loaded before its first trigger; then the trigger class, as the
    # triggerer loads it by classpath.
    import airflow.sdk, airflow.triggers.base, airflow.jobs.triggerer_job_runner
    from airflow_provider_fluents_tines.triggers import state as trigger_module

    if sys.argv[1] == "on-loop":
        def on_loop(fn):
            async def call(*args, **kwargs):
                return fn(*args, **kwargs)
            return call
        trigger_module.sync_to_async = on_loop

    async def ticker(stalls, stop):
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            stalls.append(time.perf_counter() - before - 0.001)

    async def main():
        stalls, stop = [], asyncio.Event()
        tick = asyncio.create_task(ticker(stalls, stop))
        await asyncio.sleep(0.05)
        trigger = trigger_module.ObjectStateTrigger(
            conn_id="tines_default", object_kind="tines.action", object_id=90001,
            expected={"disabled": False}, end_time=time.time() + 30, poke_interval=0.1,
        )
        started = time.perf_counter()
        event = await trigger.run().__anext__()
        elapsed = time.perf_counter() - started
        stop.set()
        await tick
        return {"status": event.payload["status"], "max_stall_ms": max(stalls) * 1000,
                "first_event_ms": elapsed * 1000}

    print(json.dumps(asyncio.run(main())))
    """
)

VARIANTS = {
    "off-loop": "this provider (set-up in a worker thread)",
    "on-loop": "same set-up on the event loop (before)",
}


def measure(variant: str, env: dict[str, str]) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, variant], capture_output=True, text=True, env=env, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    if measured["status"] != "success":
        raise RuntimeError(f"the trigger did not succeed: {measured}")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    isolate_airflow_home()
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    with sandbox_process() as url:
        from airflow_provider_fluents_tines.sandbox import connection_env

        # A UI-made connection: every declared extra saved as null.
        tines = json.loads(connection_env(url)["AIRFLOW_CONN_TINES_DEFAULT"])
        tines["extra"] = {
            key: None for key in ("timeout", "max_attempts", "max_retry_wait", "allow_insecure_http")
        }
        env = {**os.environ, "AIRFLOW_CONN_TINES_DEFAULT": json.dumps(tines)}
        for _ in range(args.repeat):
            for variant in VARIANTS:
                runs[variant].append(measure(variant, env))
    rows = []
    summary = {}
    for variant, label in VARIANTS.items():
        stalls = [run["max_stall_ms"] for run in runs[variant]]
        firsts = [run["first_event_ms"] for run in runs[variant]]
        summary[variant] = {
            "max_stall_ms": {"median": statistics.median(stalls), "max": max(stalls)},
            "first_event_ms": {"median": statistics.median(firsts)},
        }
        rows.append([label, statistics.median(stalls), max(stalls), statistics.median(firsts)])
    print(f"Largest event-loop stall while a first trigger starts ({args.repeat} fresh interpreters each)")
    print_table(["variant", "median stall ms", "worst stall ms", "first event ms"], rows)
    worst = summary["off-loop"]["max_stall_ms"]["max"]
    verdict = "met" if worst < TARGET_MS else "MISSED"
    print(f"target: worst stall < {TARGET_MS:.0f} ms -> {verdict} ({worst:.1f} ms)")
    write_results(
        "trigger_loop_stall",
        {
            "repeat": args.repeat,
            "target_ms": TARGET_MS,
            "variants": VARIANTS,
            "summary": summary,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
