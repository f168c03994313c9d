"""
bench/rollout.py at a small size: the rollout succeeds, every object ends in its desired state, and
the request budget keeps the rate-limited sandbox to at most one 429 per window. No speed targets
are asserted here (the bench prints those); the results go to a temporary file, never over
bench/results/rollout.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "rollout.py"

OBJECTS, LIMIT, WINDOW = 60, 20, 1


def test_small_rollout_under_the_rate_limit(tmp_path):
    out = tmp_path / "rollout.json"
    # The bench makes its own Airflow home and DB: none of this session's Airflow settings go along.
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--objects",
            str(OBJECTS),
            "--limit",
            str(LIMIT),
            "--window",
            str(WINDOW),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    for name in (
        "machine",
        "objects",
        "dag_run_state",
        "objects_not_in_desired_state",
        "requests",
        "reads",
        "writes",
        "responses_429",
        "windows",
        "max_429_per_window",
        "elapsed_s",
        "minimum_s",
        "ratio_to_minimum",
        "rollout_cpu_per_object_ms",
        "raw_cpu_per_object_ms",
    ):
        assert name in results, name
    assert results["objects"] == OBJECTS
    assert results["dag_run_state"] == "success"
    assert results["objects_not_in_desired_state"] == 0
    # plan reads each object, apply reads and writes it; the verification reads each wave at least
    # once (its story's list page, through the shared poller, rather than a GET per object)
    assert results["writes"] >= OBJECTS
    assert results["requests"] >= 3 * OBJECTS + 3
    assert results["max_429_per_window"] <= 1
    assert all(limited <= 1 for _, _, limited in results["windows_detail"])
