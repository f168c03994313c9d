"""
Per-call overhead: N sequential get_action and update_action calls through FluentsHook and TinesHook,
raw requests.Session calls, and the stock HttpHook.run, all against one sandbox process.

Variants run interleaved in rounds, so machine noise hits them alike; the ratio is to the raw session.
Run: .venv/bin/python bench/call_overhead.py [--calls 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

from _common import isolate_airflow_home, print_table, sandbox_process, write_results

isolate_airflow_home()

FLUENTS_ACTION = "3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11"
TINES_ACTION = 90006


def variants(url: str) -> dict[str, Callable[[int], None]]:
    import requests
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_fluents_tines.hooks.fluents import FluentsHook
    from airflow_provider_fluents_tines.hooks.tines import TinesHook
    from airflow_provider_fluents_tines.sandbox import DEFAULT_FLUENTS_TOKEN, DEFAULT_TINES_TOKEN

    fluents, tines = FluentsHook(), TinesHook()
    raw_f, raw_t = requests.Session(), requests.Session()
    raw_f.headers["Authorization"] = f"Bearer {DEFAULT_FLUENTS_TOKEN}"
    raw_t.headers["Authorization"] = f"Bearer {DEFAULT_TINES_TOKEN}"
    stock_get_f, stock_post_f = HttpHook("GET", "http_fluents"), HttpHook("POST", "http_fluents")
    stock_get_t, stock_put_t = HttpHook("GET", "http_tines"), HttpHook("PUT", "http_tines")

    def raw_call(session, method, path, **kw):
        response = session.request(method, url + path, timeout=30, **kw)
        response.raise_for_status()
        return response.json()

    return {
        "fluents get_action / hook": lambda i: fluents.get_action(FLUENTS_ACTION),
        "fluents get_action / raw session": lambda i: raw_call(
            raw_f, "GET", "/v1/actions", params={"id": FLUENTS_ACTION}
        ),
        "fluents get_action / stock HttpHook": lambda i: stock_get_f.run(
            "/v1/actions", data={"id": FLUENTS_ACTION}
        ).json(),
        "fluents update_action / hook": lambda i: fluents.update_action(FLUENTS_ACTION, label=f"Billing {i}"),
        "fluents update_action / raw session": lambda i: raw_call(
            raw_f, "POST", "/v1/actions/update", params={"id": FLUENTS_ACTION}, json={"label": f"Billing {i}"}
        ),
        "fluents update_action / stock HttpHook": lambda i: stock_post_f.run(
            f"/v1/actions/update?id={FLUENTS_ACTION}", json={"label": f"Billing {i}"}
        ).json(),
        "tines get_action / hook": lambda i: tines.get_action(TINES_ACTION),
        "tines get_action / raw session": lambda i: raw_call(raw_t, "GET", f"/api/v1/actions/{TINES_ACTION}"),
        "tines get_action / stock HttpHook": lambda i: stock_get_t.run(
            f"/api/v1/actions/{TINES_ACTION}"
        ).json(),
        "tines update_action / hook": lambda i: tines.update_action(TINES_ACTION, name=f"Open case {i}"),
        "tines update_action / raw session": lambda i: raw_call(
            raw_t, "PUT", f"/api/v1/actions/{TINES_ACTION}", json={"name": f"Open case {i}"}
        ),
        "tines update_action / stock HttpHook": lambda i: stock_put_t.run(
            f"/api/v1/actions/{TINES_ACTION}", json={"name": f"Open case {i}"}
        ).json(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with sandbox_process() as url:
        from airflow_provider_fluents_tines.sandbox import (
            DEFAULT_FLUENTS_TOKEN,
            DEFAULT_TINES_TOKEN,
            connection_env,
        )

        # An unpaced budget: the calls measure overhead, and the sandbox does not rate-limit here.
        os.environ.update(connection_env(url, extra={"requests_per_minute": 10_000_000}))
        for conn_id, token in (("HTTP_FLUENTS", DEFAULT_FLUENTS_TOKEN), ("HTTP_TINES", DEFAULT_TINES_TOKEN)):
            # The stock provider's way to send a bearer token: an extra that becomes a header.
            conn = {"conn_type": "http", "host": url, "extra": {"Authorization": f"Bearer {token}"}}
            os.environ[f"AIRFLOW_CONN_{conn_id}"] = json.dumps(conn)
        calls = variants(url)
        for call in calls.values():  # warm up: connections, imports, lazy settings
            for i in range(20):
                call(i)
        samples: dict[str, list[float]] = {name: [] for name in calls}
        per_round = max(1, args.calls // args.rounds)
        for _ in range(args.rounds):
            for name, call in calls.items():
                for i in range(per_round):
                    started = time.perf_counter()
                    call(i)
                    samples[name].append(time.perf_counter() - started)

    rows, results = [], {}
    for name, values in samples.items():
        operation, variant = name.split(" / ")
        raw = statistics.median(samples[f"{operation} / raw session"])
        median = statistics.median(values)
        results[name] = {"calls": len(values), "median_ms": median * 1000, "ratio_to_raw": median / raw}
        rows.append([operation, variant, len(values), median * 1000, median / raw])
    print_table(["operation", "client", "calls", "median ms", "x raw session"], rows)
    hooks = [r for n, r in results.items() if n.endswith("/ hook")]
    worst = max(r["ratio_to_raw"] for r in hooks)
    print(f"\nworst hook ratio: {worst:.3f} (target <= 1.15: {'met' if worst <= 1.15 else 'MISSED'})")
    print(
        f"wrote {write_results('call_overhead', {'calls_per_variant': args.calls, 'results': results, 'worst_hook_ratio': worst})}"
    )


if __name__ == "__main__":
    main()
