"""
Deferrable sensors at scale: K triggers waiting in one event loop, as a triggerer runs them, each
polling a missing object (404: keep waiting) on one sandbox process. This provider's
ObjectStateTrigger side by side with the stock HttpSensorTrigger doing the same polls.

Reports CPU seconds per 1,000 polls (client process only) and traced memory per waiting trigger.
Run: .venv/bin/python bench/triggers_at_scale.py [--triggers 1000] [--interval 5] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import requests
from _common import isolate_airflow_home, print_table, sandbox_process, write_results

isolate_airflow_home()
MISSING = 4  # no such Tines action in the seed: every poll is a 404 and the trigger keeps waiting


def makers(interval: float) -> dict[str, Callable[[int], Any]]:
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    from airflow_provider_fluents_tines.triggers.state import ObjectStateTrigger

    return {
        "ObjectStateTrigger (this provider)": lambda i: ObjectStateTrigger(
            conn_id="tines_default",
            object_kind="tines.action",
            object_id=MISSING,
            expected={"disabled": False},
            end_time=time.time() + 3600,
            poke_interval=interval,
        ),
        "HttpSensorTrigger (stock)": lambda i: HttpSensorTrigger(
            endpoint=f"/api/v1/actions/{MISSING}", http_conn_id="http_tines", poke_interval=interval
        ),
    }


async def wait_in_loop(
    make: Callable[[int], Any], count: int, seconds: float, *, trace: bool
) -> dict[str, float]:
    if trace:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    cpu = time.process_time()
    tasks = [asyncio.create_task(anext(make(i).run())) for i in range(count)]
    await asyncio.sleep(seconds)
    measured = {"cpu_s": time.process_time() - cpu}
    if trace:
        measured["memory_bytes"] = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ended = [t for t in tasks if not t.cancelled()]
    measured["ended_early"] = len(ended)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with sandbox_process() as url:
        from airflow_provider_fluents_tines.sandbox import DEFAULT_TINES_TOKEN, connection_env

        # An unpaced budget: this measures the triggers' own cost (polls sharing a budget: issue 14).
        os.environ.update(connection_env(url, extra={"requests_per_minute": 10_000_000}))
        stock = {
            "conn_type": "http",
            "host": url,
            "extra": {"Authorization": f"Bearer {DEFAULT_TINES_TOKEN}"},
        }
        os.environ["AIRFLOW_CONN_HTTP_TINES"] = json.dumps(stock)
        for name, make in makers(args.interval).items():
            # Memory: traced allocations once every trigger has polled and is waiting.
            memory = asyncio.run(wait_in_loop(make, args.triggers, args.interval * 0.8, trace=True))
            requests.delete(url + "/_sandbox/journal")
            cpu = asyncio.run(wait_in_loop(make, args.triggers, args.seconds, trace=False))
            polls = len(requests.get(url + "/_sandbox/journal", params={"method": "GET"}).json())
            requests.delete(url + "/_sandbox/journal")
            results[name] = {
                "triggers": args.triggers,
                "polls": polls,
                "cpu_s": cpu["cpu_s"],
                "cpu_s_per_1000_polls": cpu["cpu_s"] / polls * 1000 if polls else None,
                "memory_kib_per_trigger": memory["memory_bytes"] / args.triggers / 1024,
                "ended_early": cpu["ended_early"],
            }
    rows = [
        [name, r["polls"], r["cpu_s"], r["cpu_s_per_1000_polls"], r["memory_kib_per_trigger"]]
        for name, r in results.items()
    ]
    print_table(["trigger", "polls", "CPU s", "CPU s / 1000 polls", "KiB / waiting trigger"], rows)
    ours, stock_result = results.values()
    ratio = ours["cpu_s_per_1000_polls"] / stock_result["cpu_s_per_1000_polls"]
    print(f"\nCPU per poll, this provider / stock: {ratio:.2f}")
    path = write_results(
        "triggers_at_scale",
        {
            "interval_s": args.interval,
            "seconds": args.seconds,
            "results": results,
            "cpu_ratio_to_stock": ratio,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
