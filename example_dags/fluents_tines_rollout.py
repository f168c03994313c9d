"""
### Fluents + Tines rollout

A multi-step rollout of a new inbound agent across support lines, with its Tines escalation:

1. **plan**: dry runs of every change (diffs in the logs and in XCom, nothing written);
2. **canary**: route one number to the new agent, then wait until the number shows it;
3. **the rest**: route the remaining numbers (dynamic task mapping), then wait for each;
4. **escalation**: enable the Tines escalation action with its new options, then wait until it shows;
5. **rollback**: if any step fails, every object the run changed is restored to its previous
   values (each update task recorded them in XCom before writing), and the run ends failed.

The params default to the sandbox's seed; point the connections `fluents_default` and
`tines_default` at real accounts and pass your own numbers, agent and action to run it for real.
Sensors poll every `FLUENTS_TINES_POKE_INTERVAL` seconds (30 when unset); they wait deferred when
`[operators] default_deferrable` is on (a triggerer is running), in poke mode otherwise.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Param, get_current_context, task

from airflow_provider_fluents_tines.operators.fluents import FluentsUpdateNumberOperator
from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator
from airflow_provider_fluents_tines.sensors.fluents import FluentsNumberSensor
from airflow_provider_fluents_tines.sensors.tines import TinesActionSensor
from airflow_provider_fluents_tines.version_compat import AirflowFailException

POKE_INTERVAL = float(os.environ.get("FLUENTS_TINES_POKE_INTERVAL", "30"))
ESCALATION_OPTIONS = {
    "recipients": ["{{ params.escalation_recipient }}"],
    "subject": "{{ params.escalation_subject }}",
    "body": "{{ '{{' }}.enrich_sender_reputation.body{{ '}}' }}",
}

with DAG(
    dag_id="fluents_tines_rollout",
    schedule=None,
    catchup=False,
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
    },
) as dag:

    @task
    def remaining_numbers() -> list[str]:
        return list(get_current_context()["params"]["other_numbers"])

    numbers = remaining_numbers()
    canary_number = "{{ params.canary_number }}"
    agent = "{{ params.new_agent }}"
    escalation_id = "{{ params.escalation_action_id }}"

    plan_canary = FluentsUpdateNumberOperator(
        task_id="plan_canary", phone_number=canary_number, inbound_agent=agent, dry_run=True
    )
    plan_escalation = TinesUpdateActionOperator(
        task_id="plan_escalation",
        action_id=escalation_id,
        disabled=False,
        options=ESCALATION_OPTIONS,
        dry_run=True,
    )

    route_canary = FluentsUpdateNumberOperator(
        task_id="route_canary", phone_number=canary_number, inbound_agent=agent
    )
    wait_canary = FluentsNumberSensor(
        task_id="wait_canary",
        phone_number=canary_number,
        expected={"inbound_agent": agent},
        poke_interval=POKE_INTERVAL,
        timeout=15 * 60,
    )
    route_remaining = FluentsUpdateNumberOperator.partial(
        task_id="route_remaining", inbound_agent=agent
    ).expand(phone_number=numbers)
    wait_remaining = FluentsNumberSensor.partial(
        task_id="wait_remaining",
        expected={"inbound_agent": agent},
        poke_interval=POKE_INTERVAL,
        timeout=15 * 60,
    ).expand(phone_number=numbers)
    enable_escalation = TinesUpdateActionOperator(
        task_id="enable_escalation", action_id=escalation_id, disabled=False, options=ESCALATION_OPTIONS
    )
    wait_escalation = TinesActionSensor(
        task_id="wait_escalation",
        action_id=escalation_id,
        expected={"disabled": False, "options": {"subject": "{{ params.escalation_subject }}"}},
        poke_interval=POKE_INTERVAL,
        timeout=15 * 60,
    )

    forward = [
        plan_canary,
        plan_escalation,
        route_canary,
        wait_canary,
        route_remaining,
        wait_remaining,
        enable_escalation,
        wait_escalation,
    ]
    numbers >> [plan_canary, plan_escalation] >> route_canary >> wait_canary >> route_remaining
    route_remaining >> wait_remaining >> enable_escalation >> wait_escalation

    # Each rollback restores what its update task changed (its previous_values XCom); an update
    # that never ran or changed nothing leaves nothing to restore, and nothing is written.
    rollback_escalation = TinesUpdateActionOperator(
        task_id="rollback_escalation",
        action_id=escalation_id,
        restore_from="enable_escalation",
        trigger_rule="one_failed",
    )
    rollback_remaining = FluentsUpdateNumberOperator.partial(
        task_id="rollback_remaining", restore_from="route_remaining", trigger_rule="one_failed"
    ).expand(phone_number=numbers)
    rollback_canary = FluentsUpdateNumberOperator(
        task_id="rollback_canary",
        phone_number=canary_number,
        restore_from="route_canary",
        trigger_rule="one_failed",
    )

    @task(trigger_rule="one_failed")
    def rollout_failed() -> None:
        """Mark the run failed once the rollback has run (the rollback tasks alone would end it green)."""
        raise AirflowFailException("The rollout failed and was rolled back; see the failed task's log.")

    failed = rollout_failed()
    for rollback in (rollback_escalation, rollback_remaining, rollback_canary):
        forward >> rollback
        rollback >> failed
    forward >> failed
