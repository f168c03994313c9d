"""Operator for the Tines update-action endpoint."""

from __future__ import annotations

from typing import Any

from airflow_provider_fluents_tines.objects.tines import TINES_ACTION
from airflow_provider_fluents_tines.operators.base import NOT_GIVEN, BaseUpdateOperator


class TinesUpdateActionOperator(BaseUpdateOperator):
    """
    Update an action of a Tines story (``PUT /api/v1/actions/{id}``), sending only the fields given.

    :param action_id: the action's id, a positive integer.
    :param name: the action's name.
    :param description: the action's description.
    :param options: the action's options block, replaced whole.
    :param position: ``{"x": int, "y": int}`` on the story diagram.
    :param source_ids: ids of the actions it receives events from (or ``links_to_sources``, not both).
        Ids here and in links may be given as strings of digits; they are sent as integers.
    :param links_to_sources: ``[{"source_id": int, "type": "DEFAULT" | "NO_MATCH" | "FAILURE"}]``.
    :param receiver_ids: ids of the actions it emits events to (or ``links_to_receivers``, not both).
    :param links_to_receivers: ``[{"receiver_id": int, "type": ...}]``.
    :param schedule: the cron schedule, e.g. ``[{"cron": "*/5 * * * *", "timezone": "Europe/Dublin"}]``.
    :param disabled: whether the action is disabled.
    :param monitor_failures: notify on failure; must be given with ``monitor_all_events``.
    :param monitor_all_events: monitor all events; must be given with ``monitor_failures``.
    :param monitor_no_events_emitted: seconds without events before a notification; needs both above.
    :param num_runs_to_save: story runs to keep (Receive Email and Webhook actions only: refused,
        after the read and before any write, on an action of another type).
    :param tines_conn_id: the Tines connection.

    The flags ``dry_run``, ``force``, ``restore_from``, ``allow_unrestorable_secrets`` and ``hook_params``
    are those of :class:`BaseUpdateOperator`.
    """

    template_fields = (
        "action_id",
        "name",
        "description",
        "options",
        "position",
        "source_ids",
        "links_to_sources",
        "receiver_ids",
        "links_to_receivers",
        "schedule",
        "disabled",
        "monitor_failures",
        "monitor_all_events",
        "monitor_no_events_emitted",
        "num_runs_to_save",
        "tines_conn_id",
        "restore_from",
    )
    template_fields_renderers = {
        "options": "json",
        "position": "json",
        "links_to_sources": "json",
        "links_to_receivers": "json",
        "schedule": "json",
    }
    object_kind = TINES_ACTION
    field_arguments = {
        name: name for name in template_fields if name not in ("action_id", "tines_conn_id", "restore_from")
    }

    def __init__(
        self,
        *,
        action_id: int | str,
        name: str = NOT_GIVEN,
        description: str | None = NOT_GIVEN,
        options: dict[str, Any] = NOT_GIVEN,
        position: dict[str, int] = NOT_GIVEN,
        source_ids: list[int] = NOT_GIVEN,
        links_to_sources: list[dict[str, Any]] = NOT_GIVEN,
        receiver_ids: list[int] = NOT_GIVEN,
        links_to_receivers: list[dict[str, Any]] = NOT_GIVEN,
        schedule: list[dict[str, Any]] | dict[str, Any] | None = NOT_GIVEN,
        disabled: bool = NOT_GIVEN,
        monitor_failures: bool = NOT_GIVEN,
        monitor_all_events: bool = NOT_GIVEN,
        monitor_no_events_emitted: int = NOT_GIVEN,
        num_runs_to_save: int = NOT_GIVEN,
        tines_conn_id: str = "tines_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action_id = action_id
        self.name = name
        self.description = description
        self.options = options
        self.position = position
        self.source_ids = source_ids
        self.links_to_sources = links_to_sources
        self.receiver_ids = receiver_ids
        self.links_to_receivers = links_to_receivers
        self.schedule = schedule
        self.disabled = disabled
        self.monitor_failures = monitor_failures
        self.monitor_all_events = monitor_all_events
        self.monitor_no_events_emitted = monitor_no_events_emitted
        self.num_runs_to_save = num_runs_to_save
        self.tines_conn_id = tines_conn_id

    def connection_id(self) -> str:
        return self.tines_conn_id

    def given_object_id(self) -> Any:
        return self.action_id
