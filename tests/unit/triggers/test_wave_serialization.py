"""The wave trigger's kwargs: JSON, ids and expected values only, refused before deferral when wrong."""

from __future__ import annotations

import json

import pytest

from airflow_provider_fluents_tines.triggers.wave import WaveStateTrigger

OBJECTS = [
    {
        "key": "tines.action:5",
        "conn_id": "tines_default",
        "object_kind": "tines.action",
        "object_id": 5,
        "expected": {"disabled": False},
    },
    {
        "key": "fluents.number:+1",
        "conn_id": "fluents_default",
        "object_kind": "fluents.number",
        "object_id": "+14155550101",
        "expected": {"inbound_agent": "a"},
    },
]


def test_serialize_round_trips():
    trigger = WaveStateTrigger(objects=OBJECTS, end_time=1e10, poke_interval=2, hook_params={"timeout": 3})
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_fluents_tines.triggers.wave.WaveStateTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert WaveStateTrigger(**kwargs).serialize() == (path, kwargs)


def test_an_unknown_kind_or_bad_hook_params_fail_in_the_deferring_task():
    with pytest.raises(ValueError, match="object_kind"):
        WaveStateTrigger(objects=[{**OBJECTS[0], "object_kind": "tines.story"}], end_time=1e10)
    with pytest.raises(ValueError, match="hook_params"):
        WaveStateTrigger(objects=OBJECTS, end_time=1e10, hook_params={"timeout": -1})
