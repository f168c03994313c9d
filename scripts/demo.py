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
    rows = []
    for service in ("fluents", "tines"):
        for kind, objects in after[service].items():
            for object_id, new in objects.items():
                old = before[service][kind][object_id]
                for field, was, now in _changed_fields(old, new):
                    rows.append((f"{service} {kind[:-1]} {object_id}", field, _short(was), _short(now)))
    return rows


def _changed_fields(old: dict, new: dict, prefix: str = ""):
    """Yield (dotted field, before, after) for each leaf that differs; nested dicts are opened."""
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key), new.get(key)
        if (prefix == "" and key in VOLATILE) or was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            yield from _changed_fields(was, now, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", was, now


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
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
