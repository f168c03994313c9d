"""
A DAG that changes a secret and takes it back: a Tines webhook's options, whose `secret` comes from an
Airflow Variable (as production DAGs keep secrets), then a sensor, an optional failure, and the rollback.
Used by the leak scan (tests/test_leak_scan.py); not an example.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, get_current_context, task

from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator
from airflow_provider_fluents_tines.sensors.tines import TinesActionSensor

with DAG(
    dag_id="leak_probe",
    schedule=None,
    catchup=False,
    params={"fail": Param(False, type="boolean")},
) as dag:
    change = TinesUpdateActionOperator(
        task_id="change_webhook",
        action_id=90001,
        options={"path": "phishing-report-v2", "secret": "{{ var.value.webhook_secret }}", "verbs": "post"},
    )
    wait = TinesActionSensor(
        task_id="wait_webhook",
        action_id=90001,
        expected={"options": {"path": "phishing-report-v2"}},
        poke_interval=0.2,
        timeout=60,
    )

    @task
    def maintenance() -> None:
        if get_current_context()["params"]["fail"]:
            raise RuntimeError("failing on purpose, so that the rollback runs")

    rollback = TinesUpdateActionOperator(
        task_id="rollback_webhook", action_id=90001, restore_from="change_webhook", trigger_rule="one_failed"
    )
    work = maintenance()
    change >> wait >> work >> rollback
    change >> rollback
