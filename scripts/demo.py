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


SUMMARY: list[str] = []


def say(*parts: object) -> None:
    """A line of the demo's summary: printed, and kept for ./scripts/demo to show without Airflow's logs."""
    line = " ".join(str(part) for part in parts)
    SUMMARY.append(line)
    print(line)


def xcom(dag_run, task_id: str, key: str = "return_value"):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key, map_index=-1)
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def print_states(dag_run, writes: int) -> None:
    say(f"DAG run {dag_run.run_id}: {dag_run.state} ({writes} writes)")
    states = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = str(ti.state)
    for task_id, state in sorted(states.items()):
        say(f"  {task_id:<28} {state}")


def indented(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def main() -> int:
    from airflow_provider_fluents_tines.rollout.report import results_table, table
    from airflow_provider_fluents_tines.sandbox import SandboxServer

    # A visibility lag makes each verification wait for real: the deferred trigger polls until the writes show.
    with SandboxServer(visibility_lag=1.5) as sandbox:
        os.environ.update(sandbox.connection_env())
        os.environ.setdefault("FLUENTS_TINES_POKE_INTERVAL", "1")
        # The rollback's settle window: covers the sandbox's visibility lag (the default suits real APIs).
        os.environ.setdefault("FLUENTS_TINES_SETTLE_SECONDS", "3")
        os.environ.setdefault("FLUENTS_TINES_VISIBILITY_LAG", "2")  # the sandbox's 1.5 s, and a margin
        say(f"Sandbox on {sandbox.url}; running fluents_tines_rollout with dag.test() ...")
        before = sandbox.state.snapshot()
        dag_run = load_dag("fluents_tines_rollout").test()
        after = sandbox.state.snapshot()
        writes = len(sandbox.state.journal(method="POST")) + len(sandbox.state.journal(method="PUT"))
        say("")
        say("Plan (rollout.plan):")
        say(indented(xcom(dag_run, "rollout.plan", "table") or "(no plan)"))
        for wave in (1, 2, 3):
            results = xcom(dag_run, f"rollout.apply_wave_{wave}", "results") or []
            say(f"\nWave {wave} (rollout.apply_wave_{wave}):")
            say(indented(results_table(results) if results else "(no objects)"))
        say("")
        print_states(dag_run, writes)
        rows = changes(before, after)
        say("")
        say(indented(table(("object", "field", "before", "after"), rows)))
        first_ok = str(dag_run.state) == "success"

        # The same rollout again, from the seed, with the Tines write refused: the last wave fails, and
        # the rollback restores the numbers the earlier waves changed.
        sandbox.state.reset()
        sandbox.state.add_fault(method="PUT", path="/api/v1/actions/90005", status=422, count=100)
        say("\nAgain, with the Tines API refusing the escalation action's update (HTTP 422) ...")
        before = sandbox.state.snapshot()
        failed_run = load_dag("fluents_tines_rollout").test()
        sandbox.state.clear_faults()
        restored = changes(before, sandbox.state.snapshot())
        report = xcom(failed_run, "rollout.rollback", "report") or []
        say("")
        print_states(
            failed_run, len(sandbox.state.journal(method="POST")) + len(sandbox.state.journal(method="PUT"))
        )
        say("\nRollback report (rollout.rollback):")
        say(
            indented(
                table(
                    ("object", "status", "fields", "message"),
                    [[row["key"], row["status"], ", ".join(row["fields"]), row["message"]] for row in report],
                )
            )
        )
        say(f"\nObjects still differing from before that run: {len(restored)}")
        second_ok = (
            str(failed_run.state) == "failed"
            and bool(report)
            and all(row["status"] in ("restored", "untouched") for row in report)
            and not restored
        )
    summary = os.environ.get("FLUENTS_TINES_DEMO_SUMMARY")
    if summary:
        Path(summary).write_text("\n".join(SUMMARY) + "\n", encoding="utf-8")
    return 0 if first_ok and second_ok else 1


if __name__ == "__main__":
    sys.exit(main())
