"""Shared by the benchmark scripts: a sandbox in its own process, machine facts, result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

RESULTS = Path(__file__).resolve().parent / "results"


def isolate_airflow_home() -> None:
    """Point Airflow at a throwaway home before it is imported (no DB is needed by any benchmark)."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-home-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@contextmanager
def sandbox_process(*args: str):
    """The sandbox served by its own process, so its CPU never counts against the client measured."""
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_fluents_tines.sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[-1].strip()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(url + "/_sandbox/config", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write_results(name: str, results: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **results}, indent=2, default=str) + "\n")
    return path


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [
        [f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print(
            "  ".join(
                cell.rjust(width) if index else cell.ljust(width)
                for cell, width in zip(row, widths, strict=True)
            )
        )
        if index == 0:
            print("  ".join("-" * width for width in widths))
