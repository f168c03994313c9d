"""
Run whole DAGs as the leak scan needs them, in this fresh process (its environment is set by the test):
the example rollout, the leak probe succeeding, failing and rolled back, the probe against a server
that echoes the key and the request body in its errors, and a rollout of the secret rolled back. Prints one JSON line of outcomes last.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def main() -> None:
    from airflow.utils import db

    from airflow_provider_fluents_tines.sandbox import SandboxServer, default_seed

    sys.path.insert(0, str(ROOT))
    from tests.dag_runner import run_dag, task_states

    db.resetdb()
    seed = default_seed()
    webhook = next(a for a in seed["tines"]["actions"] if a["id"] == 90001)
    webhook["options"]["secret"] = os.environ["LEAK_OLD_SECRET"]
    outcomes = {}
    with SandboxServer(
        seed=seed,
        fluents_token=os.environ["LEAK_FLUENTS_KEY"],
        tines_token=os.environ["LEAK_TINES_KEY"],
        visibility_lag=0.3,
    ) as sandbox:
        os.environ.update(sandbox.connection_env())
        dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        rollout, probe = load(dags / "fluents_tines_rollout.py"), load(dags / "leak_probe_dag.py")
        rollout_probe = load(dags / "leak_rollout_probe_dag.py")

        def record(name, dag_run):
            secret = sandbox.state.snapshot()["tines"]["actions"][90001]["options"]["secret"]
            outcomes[name] = {
                "state": str(dag_run.state),
                "tasks": {k: str(v) for k, v in task_states(dag_run).items()},
            }
            outcomes[name]["webhook_secret_is"] = (
                "old"
                if secret == os.environ["LEAK_OLD_SECRET"]
                else "new"
                if secret == os.environ["AIRFLOW_VAR_WEBHOOK_SECRET"]
                else "other"
            )

        record("rollout", run_dag(rollout))
        record("probe", run_dag(probe))
        sandbox.state.reset(seed)
        record("probe_failing", run_dag(probe, run_conf={"fail": True}))
        sandbox.state.reset(seed)
        sandbox.state.add_fault(method="PUT", path="/api/v1/actions/90001", status=422, echo=True, count=100)
        record("probe_echo", run_dag(probe))
        outcomes["echo_answers"] = len(sandbox.state.journal(method="PUT"))
        sandbox.state.clear_faults()
        sandbox.state.reset(seed)
        record("rollout_probe", run_dag(rollout_probe))
        outcomes["rollout_probe"]["webhook_writes"] = len(
            sandbox.state.journal(method="PUT", path="/api/v1/actions/90001")
        )
    print("LEAK-SCAN-OUTCOMES " + json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    main()
