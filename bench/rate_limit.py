"""
Rate limit: N Tines updates through TinesHook against the sandbox with Tines' actions limit on
(``limit`` requests per ``window`` seconds per key; a short window keeps the run short).

Reports the total time against the theoretical minimum and the number of 429 answers.
The issue's minimum is N / limit windows. The sandbox, like a fixed-window limiter, lets the first
window's requests through at once, so a client that waits exactly as told finishes in
(ceil(N / limit) - 1) windows plus the time to send; both are shown.
Run: .venv/bin/python bench/rate_limit.py [--updates 500] [--limit 100] [--window 2]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import requests
from _common import isolate_airflow_home, print_table, sandbox_process, write_results

isolate_airflow_home()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--window", type=float, default=2.0)
    args = parser.parse_args()
    flags = ["--rate-limit", "--rate-limit-max", str(args.limit), "--rate-limit-window", str(args.window)]
    with sandbox_process(*flags) as url:
        from airflow_provider_fluents_tines.hooks.tines import TinesHook
        from airflow_provider_fluents_tines.sandbox import connection_env

        # The connection states the sandbox's limit, as a user states Tines' (100 a minute by default):
        # the request budget paces the updates, so the server should not need to answer 429.
        budget = {"requests_per_minute": args.limit, "rate_limit_window": args.window}
        os.environ.update(connection_env(url, extra=budget))
        hook = TinesHook(max_attempts=20, max_retry_wait=600)
        started = time.monotonic()
        for i in range(args.updates):
            hook.update_action(90006, name=f"Open case in ticketing ({i})")
        elapsed = time.monotonic() - started
        journal = requests.get(url + "/_sandbox/journal", params={"method": "PUT"}).json()
    sent = len(journal)
    limited = sent - args.updates
    issue_minimum = args.updates / args.limit * args.window
    window_minimum = (math.ceil(args.updates / args.limit) - 1) * args.window
    rows = [
        ["updates", args.updates],
        ["requests sent", sent],
        ["429 answers", limited],
        ["total time (s)", elapsed],
        ["minimum, N / limit windows (s)", issue_minimum],
        ["ratio to that minimum", elapsed / issue_minimum],
        ["minimum for a fixed window (s)", window_minimum],
    ]
    print_table(["measure", "value"], rows)
    ratio = elapsed / issue_minimum
    print(f"\ntarget <= 1.10 x the minimum: {'met' if ratio <= 1.10 else 'MISSED'} ({ratio:.3f})")
    path = write_results(
        "rate_limit",
        {
            "updates": args.updates,
            "limit": args.limit,
            "window_s": args.window,
            "requests": sent,
            "responses_429": limited,
            "elapsed_s": elapsed,
            "minimum_s": issue_minimum,
            "ratio_to_minimum": ratio,
            "fixed_window_minimum_s": window_minimum,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
