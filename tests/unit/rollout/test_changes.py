"""Rollout changes and waves: checked without a request, errors naming the entry and the rule."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.rollout.changes import (
    Change,
    as_changes,
    check_waves,
    is_plain,
    load_changes,
    wave_sizes,
)

NUMBER = {"kind": "fluents.number", "id": "+14155550101", "fields": {"inbound_agent": "agt_2"}}


def test_changes_are_checked_by_their_kinds_rules():
    (change,) = as_changes([{"kind": "tines.action", "id": "90005", "fields": {"source_ids": ["90004"]}}])
    assert change == Change("tines.action", 90005, {"source_ids": [90004]})  # ids in the API's types
    assert change.key == "tines.action:90005"


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ([{**NUMBER, "kind": "tines.story"}], "changes[0].kind", "must be one of"),
        ([{**NUMBER, "id": "555"}], "changes[0].id", "E.164"),
        ([{**NUMBER, "fields": {}}], "changes[0].fields", "non-empty"),
        ([{**NUMBER, "extra": 1}], "changes[0]", "unknown keys"),
        ([NUMBER, NUMBER], "changes[1]", "again (first at changes[0])"),
        ([{"kind": "tines.action", "id": 1, "fields": {"disabled": "no"}}], "changes[0].fields.disabled", ""),
        ([], "changes", "at least one"),
        ([{**NUMBER, "fields": {"label": "{{.x}}"}}], "changes[0].fields.label", "does not parse"),
        ([Change("tines.action", 5, None)], "changes[0].fields", "non-empty"),
        ("not a list", "changes", "must be a list"),
    ],
)
def test_a_bad_change_names_its_entry_and_the_rule(changes, field, rule):
    with pytest.raises(InvalidFieldError) as raised:
        as_changes(changes)
    assert raised.value.field == field and rule in raised.value.rule


def test_templated_values_are_left_for_the_plan():
    (change,) = as_changes(
        [{"kind": "fluents.number", "id": "{{ params.n }}", "fields": {"label": "{{ x }}"}}]
    )
    assert change.id == "{{ params.n }}"
    assert not is_plain([change.as_dict()]) and is_plain([NUMBER]) and is_plain([Change(**NUMBER)])


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_desired_state_file_is_read_and_checked(tmp_path, suffix):
    path = tmp_path / f"desired{suffix}"
    document = {"changes": [NUMBER]}
    path.write_text(json.dumps(document))  # JSON is YAML too
    assert load_changes(path) == [Change("fluents.number", "+14155550101", {"inbound_agent": "agt_2"})]
    path.write_text(json.dumps({"changes": [{**NUMBER, "id": "bad"}]}))
    with pytest.raises(InvalidFieldError, match=rf"desired{suffix}: changes\[0\]\.id"):
        load_changes(path)
    path.write_text(json.dumps([NUMBER]))
    with pytest.raises(InvalidFieldError, match="one key, changes"):
        load_changes(path)


@pytest.mark.parametrize(
    ("waves", "total", "sizes"),
    [
        ([1, 0.25, 1.0], 1000, [1, 250, 749]),
        ([1, 0.25, 1.0], 4, [1, 1, 2]),
        ([1, 0.25, 1.0], 1, [1, 0, 0]),
        ([5], 3, [3]),
        ([2, 2], 10, [2, 8]),  # the last wave takes the rest
    ],
)
def test_wave_sizes(waves, total, sizes):
    assert wave_sizes(check_waves(waves), total) == sizes


@pytest.mark.parametrize("waves", [[], [0], [1.5], [0.0], ["1"], [True], "1,2"])
def test_bad_waves_are_refused(waves):
    with pytest.raises(InvalidFieldError, match="waves"):
        check_waves(waves)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["kind", "id", "fields", "x"]), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_any_input_is_accepted_or_refused_with_a_named_field(value):
    try:
        changes = as_changes(value)
    except InvalidFieldError as err:
        assert err.field.startswith("changes") and err.rule
    else:
        assert all(change.kind in ("fluents.action", "fluents.number", "tines.action") for change in changes)


def test_a_change_digest_is_keyed_so_a_stored_one_does_not_give_a_secret_away(monkeypatch):
    import hashlib

    from cryptography.fernet import Fernet

    from airflow_provider_fluents_tines.rollout import changes as module

    change = Change("tines.action", 90001, {"options": {"secret": "hunter2"}})
    canonical = json.dumps(change.as_dict(), sort_keys=True, default=str, separators=(",", ":"))
    digest = change.digest()
    assert digest != hashlib.sha256(canonical.encode()).hexdigest()[:16]  # a plain hash could be guessed
    assert digest == Change("tines.action", 90001, {"options": {"secret": "hunter2"}}).digest()
    assert digest != Change("tines.action", 90001, {"options": {"secret": "hunter3"}}).digest()
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    module._digest_key.cache_clear()
    try:
        assert change.digest() != digest  # keyed from the Fernet key
    finally:
        module._digest_key.cache_clear()
