"""
### Tines maintenance window

Every Saturday at 03:00 UTC: disable the Tines actions that call a system under maintenance, wait
until Tines shows them disabled, run the maintenance, then re-enable them and verify. Re-enabling
runs whatever happened to the maintenance, and a failed maintenance still fails the run.

**Which actions**: the run's `action_ids` param, or else the Airflow Variable
`tines_maintenance_action_ids` (a JSON list of action ids). With neither, the run changes nothing.
That matters the moment you unpause this DAG: even with `catchup=False`, Airflow runs the latest
interval at once, so an unconfigured DAG must be harmless. List actions that are enabled outside
the window. The sandbox seed's HTTP request actions are 90003 and 90006:
`airflow dags trigger tines_maintenance_window --conf '{"action_ids": [90003, 90006]}'`.

Sensors wait deferred when `[operators] default_deferrable` is on (a triggerer is running), and
in poke mode otherwise.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from airflow.sdk import DAG, Param, get_current_context, task

from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator
from airflow_provider_fluents_tines.sensors.tines import TinesActionSensor
from airflow_provider_fluents_tines.version_compat import AirflowFailException

POKE_INTERVAL = float(os.environ.get("FLUENTS_TINES_POKE_INTERVAL", "30"))

with DAG(
    dag_id="tines_maintenance_window",
    schedule="0 3 * * 6",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["example", "tines"],
    params={
        "action_ids": Param(
            [],
            type="array",
            description="Tines actions to pause during the window; when empty, the Variable "
            "tines_maintenance_action_ids, else nothing.",
        ),
        "simulate_failure": Param(False, type="boolean", description="Make the maintenance step fail."),
    },
) as dag:

    @task
    def actions_to_pause() -> list[int]:
        """The run's action ids, else the Variable's; none makes every later step a no-op (skipped)."""
        from airflow.sdk import Variable

        ids = get_current_context()["params"]["action_ids"] or Variable.get(
            "tines_maintenance_action_ids", default=[], deserialize_json=True
        )
        if not ids:
            logging.getLogger(__name__).warning(
                "No action ids (param action_ids or Variable tines_maintenance_action_ids): nothing to do."
            )
        return list(ids)

    action_ids = actions_to_pause()
    disable = TinesUpdateActionOperator.partial(task_id="disable", disabled=True).expand(action_id=action_ids)
    wait_disabled = TinesActionSensor.partial(
        task_id="wait_disabled",
        expected={"disabled": True},
        poke_interval=POKE_INTERVAL,
        timeout=10 * 60,
    ).expand(action_id=action_ids)

    @task
    def maintenance() -> None:
        """Placeholder for the real work (a database migration, a vendor upgrade...)."""
        if get_current_context()["params"]["simulate_failure"]:
            raise RuntimeError("maintenance failed (simulated)")

    work = maintenance()
    reenable = TinesUpdateActionOperator.partial(
        task_id="reenable", disabled=False, trigger_rule="all_done"
    ).expand(action_id=action_ids)
    verify_enabled = TinesActionSensor.partial(
        task_id="verify_enabled",
        expected={"disabled": False},
        poke_interval=POKE_INTERVAL,
        timeout=10 * 60,
    ).expand(action_id=action_ids)

    @task(trigger_rule="one_failed")
    def maintenance_failed() -> None:
        """Keep the run red when the maintenance failed, although the actions were re-enabled."""
        raise AirflowFailException("The maintenance step failed; the actions were re-enabled.")

    disable >> wait_disabled >> work >> reenable >> verify_enabled
    [disable, wait_disabled, work] >> reenable
    work >> maintenance_failed()
