"""
### Fluents action update

Change where a Fluents transfer-call action sends callers (its `config.phone_number`), then wait
until the action shows the new number. The update is skipped when the action already has it.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Param

from airflow_provider_fluents_tines.operators.fluents import FluentsUpdateActionOperator
from airflow_provider_fluents_tines.sensors.fluents import FluentsActionSensor

POKE_INTERVAL = float(os.environ.get("FLUENTS_TINES_POKE_INTERVAL", "30"))

with DAG(
    dag_id="fluents_action_update",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["example", "fluents"],
    params={
        "action_id": Param(
            "3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11", type="string", description="A transfer-call action."
        ),
        "transfer_number": Param(
            "+14155550177", type="string", description="Where to transfer calls, E.164."
        ),
    },
) as dag:
    update_transfer = FluentsUpdateActionOperator(
        task_id="update_transfer",
        action_id="{{ params.action_id }}",
        action_type="action_transfer_call",
        config={"phone_number": "{{ params.transfer_number }}"},
    )
    wait_transfer = FluentsActionSensor(
        task_id="wait_transfer",
        action_id="{{ params.action_id }}",
        expected={"config": {"phone_number": "{{ params.transfer_number }}"}},
        poke_interval=POKE_INTERVAL,
        timeout=10 * 60,
    )
    update_transfer >> wait_transfer
