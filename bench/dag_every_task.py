"""A DAG file using every operator and sensor of the provider: what the scheduler parses."""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_fluents_tines.operators.fluents import (
    FluentsUpdateActionOperator,
    FluentsUpdateNumberOperator,
)
from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator
from airflow_provider_fluents_tines.sensors.fluents import FluentsActionSensor, FluentsNumberSensor
from airflow_provider_fluents_tines.sensors.tines import TinesActionSensor

with DAG("bench_every_task", schedule=None) as dag:
    action = FluentsUpdateActionOperator(task_id="action", action_id="a-1", label="x")
    number = FluentsUpdateNumberOperator(task_id="number", phone_number="+14155550101", label="x")
    tines = TinesUpdateActionOperator(task_id="tines", action_id=1, disabled=False)
    wait_action = FluentsActionSensor(
        task_id="wait_action", action_id="a-1", expected={"label": "x"}, deferrable=True
    )
    wait_number = FluentsNumberSensor(
        task_id="wait_number", phone_number="+14155550101", expected={"label": "x"}
    )
    wait_tines = TinesActionSensor(task_id="wait_tines", action_id=1, expected={"disabled": False})
    action >> number >> tines >> [wait_action, wait_number, wait_tines]
