"""
### Fluents + Tines rollout

A new inbound agent goes live on the support lines, with its Tines escalation enabled, as one
rollout (`airflow_provider_fluents_tines.rollout.Rollout`):

- **plan**: every change is checked, every object read and its changed fields snapshotted, before
  any write; the plan table is in the log (and on the approval page);
- **approve** (param `approval`, Airflow 3.1+): a person approves the plan;
- **waves** (param `waves`): the canary number first, then a quarter, then the rest, each verified
  before the next starts, with writes paced under each API key's request budget;
- **rollback**: if anything failed, the snapshot is restored by read-compare-write once every
  task has finished, and the run ends failed with a per-object report.

The params default to the sandbox's seed; point the connections `fluents_default` and
`tines_default` at real accounts and pass your own numbers, agent and action to run it for real.
Verification polls every `FLUENTS_TINES_POKE_INTERVAL` seconds (30 when unset), in the triggerer
when `[operators] default_deferrable` is on. The rollback watches for late writes for
`FLUENTS_TINES_SETTLE_SECONDS` and trusts a read `FLUENTS_TINES_VISIBILITY_LAG` seconds after a write (when unset:
the longest a write may take plus the connections' `visibility_lag` extra, 10 s by default).
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Param, task

from airflow_provider_fluents_tines.rollout import Rollout


def _seconds(name: str) -> float | None:
    """A setting from the environment (the tests' and the demo's), else None: the provider's default."""
    return float(os.environ[name]) if name in os.environ else None


with DAG(
    dag_id="fluents_tines_rollout",
    schedule=None,
    catchup=False,
    max_active_runs=1,  # two runs at once would each snapshot the other's writes
    doc_md=__doc__,
    tags=["example", "fluents", "tines"],
    params={
        "canary_number": Param("+14155550101", type="string", description="The number that goes first."),
        "other_numbers": Param(
            ["+14155550102", "+14155550103"], type="array", description="The rest of the numbers."
        ),
        "new_agent": Param("agt_front_desk_v2", type="string", description="The agent id to route calls to."),
        "escalation_action_id": Param(90005, type="integer", description="The Tines action to enable."),
        "escalation_recipient": Param("soc-oncall@example.com", type="string"),
        "escalation_subject": Param("Front Desk v2: high severity phishing report", type="string"),
        "waves": Param([1, 0.25, 1.0], type="array", description="Three wave sizes: counts or fractions."),
        "approval": Param(
            False, type="boolean", description="Ask a person to approve the plan (Airflow 3.1+)."
        ),
    },
) as dag:

    @task
    def desired_state(params: dict | None = None) -> list[dict]:
        """The changes: every number to the new agent, canary first, then the escalation action."""
        assert params is not None
        numbers = [params["canary_number"], *params["other_numbers"]]
        escalation = {
            "disabled": False,
            "options": {
                "recipients": [params["escalation_recipient"]],
                "subject": params["escalation_subject"],
                "body": "{{.enrich_sender_reputation.body}}",
            },
        }
        return [
            *(
                {"kind": "fluents.number", "id": n, "fields": {"inbound_agent": params["new_agent"]}}
                for n in numbers
            ),
            {"kind": "tines.action", "id": params["escalation_action_id"], "fields": escalation},
        ]

    Rollout(
        changes=desired_state(),
        waves="{{ params.waves | tojson }}",
        wave_count=3,
        approval="{{ params.approval }}",
        poke_interval=float(os.environ.get("FLUENTS_TINES_POKE_INTERVAL", "30")),
        verify_timeout=15 * 60,
        settle_seconds=_seconds("FLUENTS_TINES_SETTLE_SECONDS"),
        visibility_lag=_seconds("FLUENTS_TINES_VISIBILITY_LAG"),
    )
