"""A rollout as one declarative thing: a TaskGroup of plan, approval, waves, rollback and result."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import TaskGroup

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.rollout.changes import as_changes, check_waves
from airflow_provider_fluents_tines.rollout.tasks import (
    TABLE_XCOM_KEY,
    RolloutApplyOperator,
    RolloutPlanOperator,
    RolloutResultOperator,
    RolloutRollbackOperator,
    RolloutVerifySensor,
)
from airflow_provider_fluents_tines.version_compat import AIRFLOW_V_3_1_PLUS

ALL_DONE = "all_done"


class Rollout:
    """
    Build a rollout in the DAG being defined, as the TaskGroup ``group_id``::

        plan >> [approve] >> apply_wave_1 >> verify_wave_1 >> ... >> apply_wave_N >> verify_wave_N
        every task above >> rollback >> result (both teardowns of the plan, run once all is done)

    - ``plan`` checks every change (nothing is written if one is invalid), reads every object, and
      snapshots every field the rollout will change; a field the way back cannot restore is refused
      unless ``allow_unrestorable``.
    - ``approve`` (``approval=True``, Airflow 3.1+ with the standard provider): a person approves the
      plan table; a rejection or no answer within ``approval_timeout`` fails the run, writing nothing.
    - ``apply_wave_N`` writes its wave's objects under the request budget of each (host, key);
      ``verify_wave_N`` waits until they all show the desired state (deferrable: one trigger).
    - ``rollback`` runs once everything above has finished; it skips itself when nothing failed,
      else restores the snapshot by read-compare-write and settles (see
      :class:`~rollout.tasks.RolloutRollbackOperator`). ``result`` fails the run when anything failed.

    :param changes: a list of :class:`Change` or ``{kind, id, fields}`` dicts (templated), an XComArg,
        or :func:`load_changes` of a YAML or JSON file. Given as a list, it is checked now.
    :param waves: wave sizes: counts (int >= 1) or fractions (0 < float <= 1); the last takes the rest.
    :param fluents_conn_id: the Fluents connection.
    :param tines_conn_id: the Tines connection.
    :param approval: add the approval task (Airflow 3.1+; an error on older versions).
    :param approval_timeout: how long the approval waits for a person.
    :param allow_unrestorable: roll out even when the plan finds fields the rollback cannot restore.
    :param allow_unrestorable_secrets: without a Fernet key, change secrets with no way back for them.
    :param new_snapshot: when the plan runs again in a run, take a new snapshot (the default reuses
        this run's first one: the rollout may have written the values a new one would record).
    :param verify_timeout: seconds each wave's verification waits.
    :param poke_interval: seconds between the verification's reads of a wave.
    :param deferrable: verify in the triggerer (default: ``[operators] default_deferrable``).
    :param on_conflict: ``"skip"`` leaves fields someone else changed; ``"overwrite"`` restores them.
    :param settle_seconds: how long the rollback watches for late writes (default: the longest a
        write may take, plus ``visibility_lag``).
    :param visibility_lag: seconds a write may take to show in reads (default: the connections'
        ``visibility_lag`` extra, 10 s when not set).
    :param hook_params: settings for every hook, as on the operators.
    :param task_kwargs: more BaseOperator arguments for every task (``retries``, ``pool``...).
    :param verify_task_kwargs: more sensor arguments for the verifications only (``mode``,
        ``exponential_backoff``...).
    """

    def __init__(
        self,
        *,
        changes: Any,
        waves: Sequence[int | float] | str = (1, 0.25, 1.0),
        wave_count: int | None = None,
        group_id: str = "rollout",
        fluents_conn_id: str = "fluents_default",
        tines_conn_id: str = "tines_default",
        approval: bool | str = False,
        approval_timeout: timedelta = timedelta(hours=4),
        allow_unrestorable: bool = False,
        allow_unrestorable_secrets: bool = False,
        new_snapshot: bool = False,
        verify_timeout: float = 15 * 60,
        poke_interval: float = 30.0,
        deferrable: bool | None = None,
        on_conflict: str = "skip",
        settle_seconds: float | None = None,
        visibility_lag: float | None = None,
        hook_params: dict[str, Any] | None = None,
        task_kwargs: dict[str, Any] | None = None,
        verify_task_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(waves, str):
            if wave_count is None or wave_count < 1:
                raise validation.invalid("wave_count", "give the number of waves when waves is a template")
            count = wave_count
        else:
            count = len(check_waves(waves))  # a bad literal is a DAG import error, naming it
        if isinstance(changes, (list, tuple)):
            as_changes(changes)
        if approval is True and not AIRFLOW_V_3_1_PLUS:
            raise validation.invalid("approval", "needs Airflow 3.1 or newer (human-in-the-loop operators)")
        common: dict[str, Any] = {
            "changes": changes,
            "conn_ids": {"fluents": fluents_conn_id, "tines": tines_conn_id},
            "hook_params": hook_params,
            **(task_kwargs or {}),
        }
        with TaskGroup(group_id=group_id) as self.group:
            prefix = f"{self.group.group_id}." if self.group.group_id else ""
            common["plan_task_id"] = f"{prefix}plan"
            apply_ids = [f"{prefix}apply_wave_{n}" for n in range(1, count + 1)]
            self.plan = RolloutPlanOperator(
                task_id="plan",
                waves=waves,
                wave_count=count,
                approval=approval,
                allow_unrestorable=allow_unrestorable,
                allow_unrestorable_secrets=allow_unrestorable_secrets,
                new_snapshot=new_snapshot,
                apply_task_ids=apply_ids,
                **common,
            )
            forward: list[Any] = [self.plan]
            previous: Any = self.plan
            self.approval = None
            if approval and AIRFLOW_V_3_1_PLUS:
                self.approval = _approval(
                    approval, common["plan_task_id"], approval_timeout, task_kwargs or {}
                )
                previous >> self.approval
                previous = self.approval
                forward.append(self.approval)
            self.applies: list[RolloutApplyOperator] = []
            self.verifies: list[RolloutVerifySensor] = []
            verify_kwargs: dict[str, Any] = {
                "timeout": verify_timeout,
                "poke_interval": poke_interval,
                **(verify_task_kwargs or {}),
            }
            if deferrable is not None:
                verify_kwargs["deferrable"] = deferrable
            for wave in range(1, count + 1):
                apply = RolloutApplyOperator(task_id=f"apply_wave_{wave}", wave=wave, **common)
                verify = RolloutVerifySensor(
                    task_id=f"verify_wave_{wave}", wave=wave, **verify_kwargs, **common
                )
                previous >> apply >> verify
                previous = verify
                self.applies.append(apply)
                self.verifies.append(verify)
                forward += [apply, verify]
            self.rollback = RolloutRollbackOperator(
                task_id="rollback",
                apply_task_ids=apply_ids,
                on_conflict=on_conflict,
                settle_seconds=settle_seconds,
                visibility_lag=visibility_lag,
                **common,
            )
            # A teardown of the plan: it still runs when the run is marked failed from the UI (which
            # skips every other pending task), and clearing any task of the rollout clears the plan
            # (which reuses its first snapshot) and the rollback with it. It runs once everything
            # upstream is done, and not at all when the plan failed (nothing was written).
            self.rollback.as_teardown(setups=self.plan)
            self.result = RolloutResultOperator(task_id="result", trigger_rule=ALL_DONE, **common)
            # A teardown too: a run marked failed from the UI skips every pending task but its
            # teardowns, and then ends in the state its teardowns leave (a rollback that restored
            # everything would leave it successful); the result fails it, naming the waves skipped.
            self.result.as_teardown(setups=self.plan, on_failure_fail_dagrun=True)
            for task in forward:
                task >> self.rollback
                if task is not self.plan:
                    task >> self.result
            self.rollback >> self.result

    @property
    def verified(self) -> Any:
        """The last wave's verification: every change applied and showing once it succeeds."""
        return self.verifies[-1]

    def guard(self, *tasks: Any) -> None:
        """
        Run ``tasks`` (a smoke test, say) after the last wave is verified, and roll back when one of
        them fails: the rollback and the result wait for them and count their failures. Tasks that
        must run later than that can be wired to them; guard only the ones whose failure rolls back.
        """
        for task in tasks:
            self.verified >> task
            task >> self.rollback
            task >> self.result


def _approval(
    required: bool | str, plan_task_id: str, timeout: timedelta, task_kwargs: dict[str, Any]
) -> Any:
    """The standard provider's approval, showing the plan table; a rejection fails the task."""
    import inspect

    try:
        from airflow.providers.standard.operators.hitl import HITLOperator

        from airflow_provider_fluents_tines.rollout.approval import RolloutApprovalOperator
    except ImportError as err:
        raise validation.invalid(
            "approval",
            "needs apache-airflow-providers-standard 1.8.0 or newer "
            f"(pip install 'airflow-provider-fluents-tines[approval]'): {err}",
        ) from None
    kwargs: dict[str, Any] = {key: value for key, value in task_kwargs.items() if key in ("pool", "queue")}
    # The standard provider takes response_timeout from 1.12.2; before, the response wait is execution_timeout.
    if "response_timeout" in inspect.signature(HITLOperator.__init__).parameters:
        kwargs["response_timeout"] = timeout
    else:
        kwargs["execution_timeout"] = timeout
    return RolloutApprovalOperator(
        task_id="approve",
        required=required,
        subject="Approve this rollout?",
        body=f"```\n{{{{ ti.xcom_pull(task_ids='{plan_task_id}', key='{TABLE_XCOM_KEY}') }}}}\n```",
        fail_on_reject=True,
        # A rejection or a timeout is an answer: a retry (from the DAG's default_args) would ask again.
        retries=0,
        **kwargs,
    )
