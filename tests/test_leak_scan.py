"""
The leak scan: whole DAG runs at DEBUG with distinctive API keys and a distinctive webhook secret (old
and new), then a search of everything the runs left: stdout and stderr, every log file, and every table
of the metadata DB. Neither key nor either secret may appear in the clear anywhere. The README's
"Reliability and secrets" section says where an old secret is kept (encrypted, in previous_values).

Some lines are Airflow's own diagnostics, not ours, and are left out of the search:
- at DEBUG, Airflow's supervisor comms log each message a task sends ("Sending request" /
  "Received message from task runner"): ``MaskSecret(value=...)`` on every version in ``dag.test()``
  (the real supervisor omits that body), and on Airflow 3.0 and 3.1 ``SetRenderedFields`` with the
  rendered template fields unmasked (a Variable's secret templated into ``options`` shows there);
- on Airflow 3.0, ``dag.test()`` prints failing tasks' tracebacks with their local variables (rich's
  box-drawn frames), which hold what a task read from the API.
Everything the provider itself writes (its log lines, errors, XComs, trigger kwargs and events, the
metadata DB rows) is searched in full.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "LEAK_TINES_KEY": "tines-key-LEAKPROBE-7Qx2",
    "LEAK_FLUENTS_KEY": "fluents-key-LEAKPROBE-9Wz4",
    "LEAK_OLD_SECRET": "whsec-OLD-LEAKPROBE-3Kp8",
    "AIRFLOW_VAR_WEBHOOK_SECRET": "whsec-NEW-LEAKPROBE-5Jm6",
}


def _without_airflow_diagnostics(text: str) -> str:
    """``text`` without the Airflow diagnostics named in the module's docstring."""
    from airflow_provider_fluents_tines.version_compat import AIRFLOW_V_3_1_PLUS

    def airflows(line: str) -> bool:
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # Airflow 3.1 colours its console lines
        if "Sending request" in line or "Received message from task runner" in line:
            return "msg=MaskSecret(" in line or "SetRenderedFields(" in line
        return not AIRFLOW_V_3_1_PLUS and "\u2502" in line  # a rich traceback frame's line

    return "\n".join(line for line in text.splitlines() if not airflows(line))


def _db_text(database: Path) -> dict[str, str]:
    """Every table of the metadata DB, each row as text (blobs decoded), keyed by table."""
    tables: dict[str, str] = {}
    with sqlite3.connect(database) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in names:
            rows = conn.execute(f'SELECT * FROM "{name}"').fetchall()  # table names come from the DB itself
            tables[name] = "\n".join(
                " | ".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row)
                for row in rows
            )
    return tables


def test_no_key_or_secret_anywhere_after_whole_dag_runs(tmp_path):
    from cryptography.fernet import Fernet

    home = tmp_path / "airflow-home"
    dags = home / "dags"
    dags.mkdir(parents=True)
    shutil.copy(ROOT / "example_dags" / "fluents_tines_rollout.py", dags)
    shutil.copy(ROOT / "tests" / "leak_scan" / "leak_probe_dag.py", dags)
    shutil.copy(ROOT / "tests" / "leak_scan" / "leak_rollout_probe_dag.py", dags)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))},
        **SECRETS,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
        "FLUENTS_TINES_POKE_INTERVAL": "0.2",
        "FLUENTS_TINES_SETTLE_SECONDS": "1",
        "FLUENTS_TINES_VISIBILITY_LAG": "1",
    }
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "leak_scan" / "run_dags.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("LEAK-SCAN-OUTCOMES ")]
    outcomes = json.loads(line.split(" ", 1)[1])

    # The runs did what they are for (a scan of runs that did nothing would prove nothing).
    assert outcomes["rollout"]["state"] == "success"
    assert outcomes["probe"]["state"] == "success" and outcomes["probe"]["webhook_secret_is"] == "new"
    failing = outcomes["probe_failing"]
    assert failing["tasks"]["maintenance"] == "failed" and failing["tasks"]["rollback_webhook"] == "success"
    assert failing["webhook_secret_is"] == "old"  # restored from the encrypted previous values
    assert outcomes["probe_echo"]["tasks"]["change_webhook"] == "failed" and outcomes["echo_answers"] >= 1
    rolled_back = outcomes["rollout_probe"]
    assert rolled_back["tasks"]["rollout.verify_wave_1"] == "success", rolled_back  # the new secret was live
    assert rolled_back["tasks"]["rollout.rollback"] == "success" and rolled_back["webhook_secret_is"] == "old"
    assert rolled_back["webhook_writes"] == 2  # the new secret, then the old one from the encrypted snapshot
    assert any("request headers" in line for line in run.stdout.splitlines()), (
        "the echoing server's errors must have reached the logs, scrubbed"
    )

    places = {
        "stdout": _without_airflow_diagnostics(run.stdout),
        "stderr": _without_airflow_diagnostics(run.stderr),
    }
    for path in sorted(home.rglob("*")):
        if path.is_file() and path.suffix not in (".db", ".db-journal", ".db-wal"):
            places[f"file {path.relative_to(home)}"] = _without_airflow_diagnostics(
                path.read_text(errors="replace")
            )
    for table, text in _db_text(home / "airflow.db").items():
        places[f"table {table}"] = text
    assert any(name.startswith("table xcom") for name in places) and len(places) > 20
    leaks = [
        f"{name} in {place}"
        for name, secret in SECRETS.items()
        for place, text in places.items()
        if secret in text
    ]
    assert leaks == []
