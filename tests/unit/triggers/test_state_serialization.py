"""The trigger's kwargs: what travels to the triggerer, and what is refused before it does."""

from __future__ import annotations

import json

import pytest

from airflow_provider_fluents_tines.objects.tines import TINES_ACTION
from airflow_provider_fluents_tines.triggers.state import KINDS, ObjectStateTrigger


def _trigger(**kwargs):
    base = {
        "conn_id": "tines_default",
        "object_kind": "tines.action",
        "object_id": 7,
        "expected": {"disabled": True},
        "end_time": 1e10,
    }
    return ObjectStateTrigger(**{**base, **kwargs})


def test_serialize_round_trips_with_hook_params():
    trigger = _trigger(hook_params={"timeout": 3, "retry_policy": {"max_attempts": 2}})
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_fluents_tines.triggers.state.ObjectStateTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # stored in the metadata DB as JSON
    again = ObjectStateTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert again.kind is TINES_ACTION


def test_every_kind_is_reachable_by_its_key():
    assert sorted(KINDS) == ["fluents.action", "fluents.number", "tines.action"]
    assert all(KINDS[key].key == key for key in KINDS)


def test_an_unknown_kind_is_refused_where_the_trigger_is_made():
    with pytest.raises(
        TypeError, match="object_kind: must be one of"
    ):  # TypeError: the triggerer fails it alone
        _trigger(object_kind="action")
