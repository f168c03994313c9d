"""
### Sensors that time out, one per mode

Each waits for a state Tines action 90004 never shows, with the same `timeout` and `poke_interval`,
so the deployment tier can measure how far past its timeout each mode ends with a real scheduler,
worker and triggerer (issue #11: poke and deferrable within one poke interval plus one request
deadline; reschedule mode adds the scheduler's latency).
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_fluents_tines.sensors.tines import TinesActionSensor

TIMEOUT = 12
POKE_INTERVAL = 3

with DAG(dag_id="deployment_sensor_timeouts", schedule=None, catchup=False, tags=["test"]) as dag:
    for mode, deferrable in (("poke", False), ("reschedule", False), ("deferrable", True)):
        TinesActionSensor(
            task_id=f"times_out_{mode}",
            action_id=90004,
            expected={"name": "a name action 90004 never has"},
            mode="reschedule" if mode == "reschedule" else "poke",
            deferrable=deferrable,
            timeout=TIMEOUT,
            poke_interval=POKE_INTERVAL,
            retries=0,
        )
