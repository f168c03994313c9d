"""Sensor waiting on Tines actions."""

from __future__ import annotations

from typing import Any

from airflow_provider_fluents_tines.objects.tines import TINES_ACTION
from airflow_provider_fluents_tines.sensors.base import BaseObjectStateSensor

# Tines allows 100 requests per minute per key on actions: one poll a minute lets dozens of
# sensors (and the updates they wait for) share a key.
_DEFAULT_POKE_INTERVAL = 60


class TinesActionSensor(BaseObjectStateSensor):
    """
    Wait until a Tines action shows ``expected`` (e.g. ``{"disabled": False}``).

    :param action_id: the action's id, a positive integer.
    :param tines_conn_id: the Tines connection.

    Other parameters are those of :class:`BaseObjectStateSensor` and ``BaseSensorOperator``
    (``poke_interval`` defaults to 60 s, for the API's rate limit).
    """

    template_fields = ("action_id", "expected", "tines_conn_id")
    template_fields_renderers = {"expected": "json"}
    object_kind = TINES_ACTION

    def __init__(self, *, action_id: int | str, tines_conn_id: str = "tines_default", **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", _DEFAULT_POKE_INTERVAL)
        super().__init__(**kwargs)
        self.action_id = action_id
        self.tines_conn_id = tines_conn_id

    def connection_id(self) -> str:
        return self.tines_conn_id

    def given_object_id(self) -> Any:
        return self.action_id
