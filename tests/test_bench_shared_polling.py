"""
bench/shared_polling.py at a small size, for both services: the shared poller keeps every window of
the sandbox's journal within the request budget, draws no 429, and every sensor sees its change (Tines
through list reads; Fluents confirmed by a GET, so every event has a GET's shape). No speed or
lateness is asserted here (the bench prints those); the results go to a temporary file, never over
bench/results/shared_polling.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "shared_polling.py"

SENSORS, LIMIT, WINDOW = 60, 30, 1
SHARED, REPLICA = "shared poller", "one GET per trigger"


def test_small_shared_polling_within_the_budget(tmp_path):
    out = tmp_path / "shared_polling.json"
    # The bench makes its own Airflow home: none of this session's Airflow settings go along.
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--sensors",
            str(SENSORS),
            "--limit",
            str(LIMIT),
            "--window",
            str(WINDOW),
            "--stories",
            "6",
            "--tenant",
            "600",
            "--tines-spread",
            "5",
            "--fluents-spread",
            "6",
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
    for name in ("machine", "sensors", "limit", "window_s", "poke_interval_s", "services", "invariants_held"):
        assert name in results, name
    assert results["invariants_held"] is True, results["failures"]
    assert set(results["services"]) == {"tines", "fluents"}
    for service, result in results["services"].items():
        assert set(result["designs"]) == {SHARED, REPLICA}, service
        for design, measured in result["designs"].items():
            for name in (
                "sensors",
                "requests",
                "list_reads",
                "single_gets",
                "max_requests_per_window",
                "responses_429",
                "saw_change",
                "not_seen",
                "late_over_2_intervals",
                "delay_max_s",
                "delay_p95_s",
                "cpu_s",
                "cpu_s_per_1000_sensor_intervals",
                "cpu_s_per_1000_readings",
                "memory_kib_per_sensor",
            ):
                assert name in measured, (service, design, name)
            assert measured["sensors"] == SENSORS
            # Only the sensors' requests are in the journal: the sandbox makes the changes itself.
            assert measured["requests_not_ours"] == 0
        shared = result["designs"][SHARED]
        assert shared["max_requests_per_window"] <= LIMIT, service
        assert shared["responses_429"] == 0, service
        assert shared["saw_change"] == SENSORS and shared["not_seen"] == 0, service
        assert shared["events"] == {"success": SENSORS, "timeout": 0, "failed": 0}, service
    tines = results["services"]["tines"]["designs"][SHARED]
    assert tines["list_reads"] > 0
    fluents = results["services"]["fluents"]["designs"][SHARED]
    assert fluents["list_reads"] > 0
    # A match seen in a Fluents list is confirmed with a GET: the event shows the GET's shape.
    assert fluents["events_in_get_shape"] == SENSORS
