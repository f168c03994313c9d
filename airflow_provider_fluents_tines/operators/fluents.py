"""Operators for the Fluents update endpoints."""

from __future__ import annotations

from typing import Any

from airflow_provider_fluents_tines.objects.fluents import FLUENTS_ACTION, FLUENTS_NUMBER
from airflow_provider_fluents_tines.operators.base import NOT_GIVEN, BaseUpdateOperator


class FluentsUpdateActionOperator(BaseUpdateOperator):
    """
    Update a Fluents call action (``POST /v1/actions/update?id=``), sending only the fields given.

    :param action_id: the action's id.
    :param action_type: one of the six action types (``action_transfer_call``, ...). ``config`` given
        without it is checked against the action's stored type, read first, which is sent with it.
    :param label: the action's label.
    :param description: the action's description.
    :param config: the type's config, replaced whole (transfer call and add-to-conference need an
        E.164 ``phone_number``).
    :param action_trigger: ``{"type": "action_trigger_function_call" | "action_trigger_phrase_based", "config": ...}``.
    :param fluents_conn_id: the Fluents connection.

    The flags ``dry_run``, ``force``, ``restore_from``, ``allow_unrestorable_secrets`` and ``hook_params``
    are those of :class:`BaseUpdateOperator`.
    """

    template_fields = (
        "action_id",
        "action_type",
        "action_label",
        "description",
        "config",
        "action_trigger",
        "fluents_conn_id",
        "restore_from",
    )
    template_fields_renderers = {"config": "json", "action_trigger": "json"}
    object_kind = FLUENTS_ACTION
    field_arguments = {
        "action_type": "type",
        "action_label": "label",
        "description": "description",
        "config": "config",
        "action_trigger": "action_trigger",
    }

    def __init__(
        self,
        *,
        action_id: str,
        action_type: str = NOT_GIVEN,
        label: str = NOT_GIVEN,
        description: str = NOT_GIVEN,
        config: dict[str, Any] = NOT_GIVEN,
        action_trigger: dict[str, Any] = NOT_GIVEN,
        fluents_conn_id: str = "fluents_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action_id = action_id
        self.action_type = action_type
        # AbstractOperator.label is the task's display label; keep the field under another name.
        self.action_label = label
        self.description = description
        self.config = config
        self.action_trigger = action_trigger
        self.fluents_conn_id = fluents_conn_id

    def connection_id(self) -> str:
        return self.fluents_conn_id

    def given_object_id(self) -> Any:
        return self.action_id


class FluentsUpdateNumberOperator(BaseUpdateOperator):
    """
    Update a Fluents phone number (``POST /v1/numbers/update?phone_number=``), sending only the fields given.

    The API requires ``example_context`` on every update: when it is not given, the number's current
    context is read and sent back, so changing a label never wipes it.

    :param phone_number: the number, E.164 (``+14155550101``).
    :param label: the number's label.
    :param description: the number's description.
    :param outbound_only: whether the number only places calls.
    :param inbound_agent: the agent id to answer calls, or ``None`` to detach the agent.
    :param example_context: the context object, replaced whole.
    :param fluents_conn_id: the Fluents connection.

    The flags ``dry_run``, ``force``, ``restore_from``, ``allow_unrestorable_secrets`` and ``hook_params``
    are those of :class:`BaseUpdateOperator`.
    """

    template_fields = (
        "phone_number",
        "number_label",
        "description",
        "outbound_only",
        "inbound_agent",
        "example_context",
        "fluents_conn_id",
        "restore_from",
    )
    template_fields_renderers = {"inbound_agent": "json", "example_context": "json"}
    object_kind = FLUENTS_NUMBER
    field_arguments = {
        "number_label": "label",
        "description": "description",
        "outbound_only": "outbound_only",
        "inbound_agent": "inbound_agent",
        "example_context": "example_context",
    }

    def __init__(
        self,
        *,
        phone_number: str,
        label: str = NOT_GIVEN,
        description: str = NOT_GIVEN,
        outbound_only: bool = NOT_GIVEN,
        inbound_agent: str | dict[str, Any] | None = NOT_GIVEN,
        example_context: dict[str, Any] = NOT_GIVEN,
        fluents_conn_id: str = "fluents_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.phone_number = phone_number
        # AbstractOperator.label is the task's display label; keep the field under another name.
        self.number_label = label
        self.description = description
        self.outbound_only = outbound_only
        self.inbound_agent = inbound_agent
        self.example_context = example_context
        self.fluents_conn_id = fluents_conn_id

    def connection_id(self) -> str:
        return self.fluents_conn_id

    def given_object_id(self) -> Any:
        return self.phone_number
