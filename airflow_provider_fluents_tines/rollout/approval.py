"""The rollout's approval gate: the standard provider's ApprovalOperator (Airflow 3.1+), switchable per run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class RolloutApprovalOperator(ApprovalOperator):
    """
    A person approves the plan before any write. Rejecting fails the task (so the waves never start
    and the run ends failed); no answer within ``response_timeout`` fails it too.

    :param required: whether this run needs the approval (templated: a DAG param can switch it off,
        as the example does for unattended runs); when false the task approves nothing and passes.
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "required")

    def __init__(self, *, required: bool | str = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.required = required

    def execute(self, context: Context) -> Any:
        from airflow_provider_fluents_tines.rollout.tasks import _truthy

        if not _truthy(self.required):
            self.log.info("This run asks for no approval: going ahead.")
            return None
        return super().execute(context)
