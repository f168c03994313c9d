"""
Import cost at DAG-parse time: a DAG file using every operator and sensor, measured with
``python -X importtime`` beyond ``import airflow.sdk``, and which heavy modules it pulls in.

Run: .venv/bin/python bench/import_cost.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _common import isolate_airflow_home, print_table, write_results

isolate_airflow_home()
HERE = Path(__file__).resolve().parent
HEAVY = ("aiohttp", "fastapi", "uvicorn", "starlette", "requests", "airflow.providers.http")
# What any DAG file with Airflow's own operators and sensors imports: the line between Airflow's
# cost and this provider's.
AUTHORING = (
    "import airflow.sdk; from airflow.sdk import DAG, BaseOperator, BaseSensorOperator, PokeReturnValue, conf; "
    "import airflow.sdk.exceptions; DAG('baseline', schedule=None)"
)


def imported(code: str) -> dict[str, int]:
    """Module -> self import time (us) for one fresh interpreter running ``code``."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )
    modules = {}
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            self_us, _cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
            modules[name] = int(self_us)
    return modules


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    beyond_sdk, beyond_authoring, new_modules = [], [], set()
    for _ in range(args.repeat):
        sdk = imported("import airflow.sdk")
        authoring = imported(AUTHORING)
        full = imported("import airflow.sdk; import dag_every_task")
        new_modules |= {name for name in full if name not in sdk}
        beyond_sdk.append(sum(us for name, us in full.items() if name not in sdk) / 1000)
        beyond_authoring.append(sum(us for name, us in full.items() if name not in authoring) / 1000)
    heavy = sorted(m for m in new_modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    ours = sorted(m for m in new_modules if m.startswith("airflow_provider_fluents_tines"))
    literal, provider = statistics.median(beyond_sdk), statistics.median(beyond_authoring)
    print_table(
        ["measure (median of runs)", "ms"],
        [
            ["the DAG file beyond `import airflow.sdk`", literal],
            ["... of which Airflow's own DAG authoring (any DAG file)", literal - provider],
            ["... of which this provider", provider],
        ],
    )
    print(f"\nprovider modules imported: {', '.join(ours)}")
    print(f"aiohttp / FastAPI / uvicorn / requests / http provider imported: {', '.join(heavy) or 'none'}")
    print(
        f"target <= 30 ms beyond airflow.sdk: {'met' if literal <= 30 else 'MISSED'} ({literal:.1f} ms); "
        f"provider's own share <= 30 ms: {'met' if provider <= 30 else 'MISSED'} ({provider:.1f} ms)"
    )
    path = write_results(
        "import_cost",
        {
            "repeat": args.repeat,
            "beyond_airflow_sdk_ms": literal,
            "provider_share_ms": provider,
            "samples_beyond_airflow_sdk_ms": beyond_sdk,
            "samples_provider_share_ms": beyond_authoring,
            "modules_added": sorted(new_modules),
            "heavy_imports": heavy,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
