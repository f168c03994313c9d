"""Sensors waiting on Fluents actions and numbers."""

from __future__ import annotations

from typing import Any

from airflow_provider_fluents_tines.objects.fluents import FLUENTS_ACTION, FLUENTS_NUMBER
from airflow_provider_fluents_tines.sensors.base import BaseObjectStateSensor

# Fluents documents no rate limit; this still keeps many waiting sensors light.
_DEFAULT_POKE_INTERVAL = 30


class FluentsActionSensor(BaseObjectStateSensor):
    """
    Wait until a Fluents action shows ``expected`` (e.g. ``{"config": {"phone_number": "+1..."}}``).

    :param action_id: the action's id.
    :param fluents_conn_id: the Fluents connection.

    Other parameters are those of :class:`BaseObjectStateSensor` and ``BaseSensorOperator``
    (``poke_interval`` defaults to 30 s).
    """

    template_fields = ("action_id", "expected", "fluents_conn_id")
    template_fields_renderers = {"expected": "json"}
    object_kind = FLUENTS_ACTION

    def __init__(self, *, action_id: str, fluents_conn_id: str = "fluents_default", **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", _DEFAULT_POKE_INTERVAL)
        super().__init__(**kwargs)
        self.action_id = action_id
        self.fluents_conn_id = fluents_conn_id

    def connection_id(self) -> str:
        return self.fluents_conn_id

    def given_object_id(self) -> Any:
        return self.action_id


class FluentsNumberSensor(BaseObjectStateSensor):
    """
    Wait until a Fluents number shows ``expected``. ``inbound_agent`` compares by agent id, whether
    the API returns the id or the embedded agent.

    :param phone_number: the number, E.164.
    :param fluents_conn_id: the Fluents connection.

    Other parameters are those of :class:`BaseObjectStateSensor` and ``BaseSensorOperator``
    (``poke_interval`` defaults to 30 s).
    """

    template_fields = ("phone_number", "expected", "fluents_conn_id")
    template_fields_renderers = {"expected": "json"}
    object_kind = FLUENTS_NUMBER

    def __init__(self, *, phone_number: str, fluents_conn_id: str = "fluents_default", **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", _DEFAULT_POKE_INTERVAL)
        super().__init__(**kwargs)
        self.phone_number = phone_number
        self.fluents_conn_id = fluents_conn_id

    def connection_id(self) -> str:
        return self.fluents_conn_id

    def given_object_id(self) -> Any:
        return self.phone_number
