"""Operator for the Tines update-action endpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.operators.base import NOT_GIVEN, BaseUpdateOperator

_MONITOR_FIELDS = ("monitor_failures", "monitor_all_events", "monitor_no_events_emitted")


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

    The flags ``dry_run``, ``force`` and ``restore_from`` are those of :class:`BaseUpdateOperator`.
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
    hook_class_path = "airflow_provider_fluents_tines.hooks.tines.TinesHook"
    object_kind = "action"
    id_argument = "action_id"
    conn_id_argument = "tines_conn_id"
    field_arguments = {
        name: name for name in template_fields if name not in ("action_id", "tines_conn_id", "restore_from")
    }
    # The update API takes the monitor fields only together (monitor_no_events_emitted needs both).
    companion_fields = {
        "monitor_failures": ("monitor_all_events",),
        "monitor_all_events": ("monitor_failures",),
        "monitor_no_events_emitted": ("monitor_failures", "monitor_all_events"),
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

    def given_fields(self) -> dict[str, Any]:
        # Action ids given as digit strings (rendered templates; the API page quotes them) are sent as ints.
        return validation.tines_ids_as_ints(super().given_fields())

    def field_problems(self, fields: Mapping[str, Any]) -> list[validation.Problem]:
        return validation.tines_action_update_problems(fields)

    def object_problems(
        self, fields: Mapping[str, Any], current: Mapping[str, Any]
    ) -> list[validation.Problem]:
        # num_runs_to_save exists only for some action types: refused once the type is read.
        return validation.tines_action_update_problems(fields, current_type=current.get("type"))

    def previous_values(self, changed: Sequence[str], observed: Mapping[str, Any]) -> dict[str, Any]:
        """Restore links with their types: ``source_ids`` changes are recorded as ``links_to_sources``."""
        as_links = {"source_ids": "links_to_sources", "receiver_ids": "links_to_receivers"}
        fields = [
            as_links[name] if name in as_links and as_links[name] in observed else name for name in changed
        ]
        previous = super().previous_values(fields, observed)
        # monitor_no_events_emitted cannot be restored to "unset" (None) through the API's rules.
        if previous.get("monitor_no_events_emitted", 0) is None:
            del previous["monitor_no_events_emitted"]
            self.log.warning("monitor_no_events_emitted was unset before; a rollback cannot unset it again.")
        return previous
