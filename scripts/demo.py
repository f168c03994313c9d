"""
Run the fluents_tines_rollout example DAG end to end against the sandbox and print what changed.

Called by ./scripts/demo after the Airflow home is migrated; exits non-zero if the run fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOLATILE = {"updated_at", "inbound_agent_name", "slug"}


def load_dag(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "example_dags" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def changes(before: dict, after: dict) -> list[tuple[str, str, str, str]]:
    """Each field the run changed, nested fields by dotted path (the provider's own matcher)."""
    from airflow_provider_fluents_tines.matching import differences

    rows = []
    for service in ("fluents", "tines"):
        for kind, objects in after[service].items():
            for object_id, new in objects.items():
                shown = {key: value for key, value in new.items() if key not in VOLATILE}
                for change in differences(shown, before[service][kind][object_id], subset=True):
                    row = (
                        f"{service} {kind[:-1]} {object_id}",
                        change.path,
                        change.observed,
                        change.expected,
                    )
                    rows.append((*row[:2], _short(row[2]), _short(row[3])))
    return rows


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=repr)  # repr: a field absent before shows as <missing>
    return text if len(text) <= 48 else text[:45] + "..."


def main() -> int:
    from airflow_provider_fluents_tines.sandbox import SandboxServer

    # A visibility lag makes each sensor wait for real: the first check on the worker sees the old
    # state, then the deferred trigger polls until the write shows.
    with SandboxServer(visibility_lag=1.5) as sandbox:
        os.environ.update(sandbox.connection_env())
        os.environ.setdefault("FLUENTS_TINES_POKE_INTERVAL", "1")
        print(f"Sandbox on {sandbox.url}; running fluents_tines_rollout with dag.test() ...", flush=True)
        before = sandbox.state.snapshot()
        dag_run = load_dag("fluents_tines_rollout").test()
        after = sandbox.state.snapshot()
        writes = len(sandbox.state.journal(method="POST")) + len(sandbox.state.journal(method="PUT"))

    states = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = str(ti.state)
    print()
    print(f"DAG run {dag_run.run_id}: {dag_run.state} ({writes} writes)")
    for task_id, state in sorted(states.items()):
        print(f"  {task_id:<28} {state}")
    rows = changes(before, after)
    print()
    header = ("object", "field", "before", "after")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0 if str(dag_run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
