"""
### A task on the connection the browser check saved through Airflow's form

The deployment tier creates `tines_ui` in the UI's *Add Connection* form without touching the
extra fields (the form then stores each of them as null) and triggers this DAG: the update must
authenticate and succeed. Action 90007 of the sandbox's seed is one no example DAG touches.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator

with DAG(dag_id="deployment_ui_connection", schedule=None, catchup=False, tags=["test"]) as dag:
    TinesUpdateActionOperator(
        task_id="enable_summary", action_id=90007, disabled=False, tines_conn_id="tines_ui"
    )
