"""
A rollout that changes a secret and takes it back: a Tines webhook's options, whose `secret` comes from
an Airflow Variable, then a guarded task that fails, so that the rollback restores the old secret from
the plan's encrypted snapshot. Used by the leak scan (tests/test_leak_scan.py); not an example.
"""

from __future__ import annotations

from airflow.sdk import DAG, task

from airflow_provider_fluents_tines.rollout import Change, Rollout

with DAG(dag_id="leak_rollout_probe", schedule=None, catchup=False) as dag:
    rollout = Rollout(
        changes=[
            Change(
                "tines.action",
                90001,
                {
                    "options": {
                        "path": "phishing-report-v3",
                        "secret": "{{ var.value.webhook_secret }}",
                        "verbs": "post",
                    }
                },
            ),
            Change("tines.action", 90005, {"disabled": False}),
        ],
        waves=[1, 1.0],
        poke_interval=0.2,
        verify_timeout=60,
        # The sandbox shows writes at once: the defaults (the longest a write may take, plus 10 s) would
        # keep the rollback watching for two minutes.
        settle_seconds=1.0,
        visibility_lag=0.5,
    )

    @task(retries=0)
    def smoke_test() -> None:
        raise RuntimeError("failing on purpose, so that the rollback runs")

    rollout.guard(smoke_test())
