"""
### Tines escalation watch

Runs when someone disables the escalation action outside the pipeline, not on a clock: an asset
watcher (`ObjectChangeTrigger`, in the triggerer) polls the action's `disabled` field and records
an asset event when it changes. The run then checks the action: disabled outside the maintenance
window, it is enabled again (the desired state) and the run logs an alert naming who to tell;
enabled, or disabled inside the window, the run does nothing.

**Maintenance window**: the Airflow Variable `tines_escalation_maintenance_window`, `"HH:MM-HH:MM"`
in UTC (default `"02:00-04:00"`; empty: no window).

The watcher's arguments are its identity and are **not templated** (Airflow matches watchers by
them): give literal values. It polls every `FLUENTS_TINES_WATCH_INTERVAL` seconds (default 60),
through the connection's request budget, sharing reads with every other waiting trigger of the
connection in the triggerer. Needs a running triggerer; on Airflow 3.3 what it saw last survives a
triggerer restart (the asset state store), elsewhere a change made while no triggerer ran is
missed.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, time, timezone

from airflow.sdk import DAG, Asset, AssetWatcher, get_current_context, task

from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator
from airflow_provider_fluents_tines.triggers.watch import ObjectChangeTrigger

ESCALATION_ACTION = 90005  # the sandbox seed's "Escalate to on-call"
WATCH_INTERVAL = float(os.environ.get("FLUENTS_TINES_WATCH_INTERVAL", "60"))

escalation_action = Asset(
    "tines_escalation_action",
    watchers=[
        AssetWatcher(
            name="tines_escalation_disabled",
            trigger=ObjectChangeTrigger(
                conn_id="tines_default",
                object_kind="tines.action",
                object_id=ESCALATION_ACTION,
                fields=["disabled"],
                poll_interval=WATCH_INTERVAL,
            ),
        )
    ],
)


def in_window(window: str, now: time) -> bool:
    """Whether ``now`` is inside ``"HH:MM-HH:MM"`` (one that wraps midnight too); empty: never."""
    if not window.strip():
        return False
    start, end = (time.fromisoformat(part.strip()) for part in window.split("-", 1))
    return start <= now < end if start <= end else now >= start or now < end


with DAG(
    dag_id="tines_escalation_watch",
    schedule=[escalation_action],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["example", "tines"],
) as dag:

    @task.short_circuit
    def disabled_outside_the_window() -> bool:
        """True (go on) when an event shows the action disabled outside the maintenance window."""
        from airflow.sdk import Variable

        log = logging.getLogger(__name__)
        events = get_current_context()["triggering_asset_events"][escalation_action]
        payloads = [(event.extra or {}).get("payload") or {} for event in events]
        shown = [p.get("objects", {}).get(str(ESCALATION_ACTION), {}) for p in payloads]
        disabled = bool(shown) and shown[-1].get("disabled") is True
        window = Variable.get("tines_escalation_maintenance_window", default="02:00-04:00")
        now = datetime.now(timezone.utc).time()
        if not disabled:
            log.info("Action %s is enabled: nothing to do.", ESCALATION_ACTION)
            return False
        if in_window(window, now):
            log.info(
                "Action %s was disabled inside the maintenance window %s: left alone.",
                ESCALATION_ACTION,
                window,
            )
            return False
        log.warning(
            "ALERT: Tines action %s (escalation) was disabled outside the maintenance window %r; "
            "enabling it again.",
            ESCALATION_ACTION,
            window,
        )
        return True

    reenable = TinesUpdateActionOperator(task_id="reenable", action_id=ESCALATION_ACTION, disabled=False)

    disabled_outside_the_window() >> reenable
