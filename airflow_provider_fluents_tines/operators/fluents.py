"""Operators for the Fluents update endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.operators.base import NOT_GIVEN, BaseUpdateOperator

_FLUENTS_HOOK = "airflow_provider_fluents_tines.hooks.fluents.FluentsHook"


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

    The flags ``dry_run``, ``force`` and ``restore_from`` are those of :class:`BaseUpdateOperator`.
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
    hook_class_path = _FLUENTS_HOOK
    object_kind = "action"
    id_argument = "action_id"
    conn_id_argument = "fluents_conn_id"
    field_arguments = {
        "action_type": "type",
        "action_label": "label",
        "description": "description",
        "config": "config",
        "action_trigger": "action_trigger",
    }
    argument_names = {"type": "action_type"}
    # The API checks config against the type, so a restored config travels with its type.
    companion_fields = {"config": ("type",)}

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

    def field_problems(self, fields: Mapping[str, Any]) -> list[validation.Problem]:
        # config without action_type is checked against the action's stored type, once read.
        return validation.fluents_action_update_problems(fields, type_pending=True)

    def object_problems(
        self, fields: Mapping[str, Any], current: Mapping[str, Any]
    ) -> list[validation.Problem]:
        if "config" not in fields or "type" in fields:
            return []
        stored_type = current.get("type")
        if stored_type is not None and stored_type not in validation.FLUENTS_ACTION_TYPES:
            return [
                validation.Problem(
                    "config",
                    f"cannot be checked against the action's stored type {validation.shown(stored_type)}, "
                    "which is not an action type: give action_type with it",
                )
            ]
        return validation.fluents_action_update_problems(fields, current_type=stored_type)

    def complete_body(self, fields: dict[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        # The API checks config against the type: config given alone travels with the stored type.
        if "config" in fields and "type" not in fields:
            fields["type"] = current["type"]
        return fields


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

    The flags ``dry_run``, ``force`` and ``restore_from`` are those of :class:`BaseUpdateOperator`.
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
    hook_class_path = _FLUENTS_HOOK
    object_kind = "number"
    id_argument = "phone_number"
    conn_id_argument = "fluents_conn_id"
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

    def field_problems(self, fields: Mapping[str, Any]) -> list[validation.Problem]:
        return validation.fluents_number_update_problems(fields, require_example_context=False)

    def complete_body(self, fields: dict[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        if "example_context" not in fields:
            fields["example_context"] = current.get("example_context") or {}
        return fields
