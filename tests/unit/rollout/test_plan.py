"""The plan and the rollback's compare, as pure functions over objects already read."""

from __future__ import annotations

import pytest

from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.rollout.changes import Change
from airflow_provider_fluents_tines.rollout.plan import plan_entry, restore
from airflow_provider_fluents_tines.rollout.report import plan_table, report_table

ACTION = {
    "id": 5,
    "type": "Agents::EmailAgent",
    "disabled": True,
    "options": {"subject": "old", "recipients": ["a@x"]},
    "monitor_failures": False,
    "monitor_all_events": True,
    "sources": [4],
    "links_to_sources": [{"source_id": 4, "link_type": "DEFAULT"}],
}


def test_the_plan_snapshots_what_it_changes_with_companions_and_nulls():
    fields = {"disabled": False, "monitor_failures": True, "monitor_all_events": True, "description": "d"}
    change = Change("tines.action", 5, fields)
    entry = plan_entry(change, {**ACTION, "description": None}, 2, "changes[0]")
    assert entry["wave"] == 2 and entry["status"] == "change"
    # A Tines description takes null back; monitor_all_events goes with monitor_failures (API rule).
    assert entry["snapshot"] == {
        "disabled": True,
        "monitor_failures": False,
        "monitor_all_events": True,
        "description": None,
    }
    assert entry["unrestorable"] == {}
    assert {d["field"] for d in entry["diff"]} == {"disabled", "monitor_failures", "description"}


def test_a_null_the_api_refuses_and_a_field_not_shown_are_unrestorable():
    change = Change("fluents.number", "+14155550101", {"label": "x", "description": "y"})
    entry = plan_entry(change, {"number": "+14155550101", "label": None}, 1, "changes[0]")
    assert set(entry["unrestorable"]) == {"label", "description"}
    assert (
        "does not take" in entry["unrestorable"]["label"]
        and "not shown" in entry["unrestorable"]["description"]
    )
    assert entry["snapshot"] == {}


def test_a_rule_the_read_object_decides_names_the_change():
    change = Change("tines.action", 5, {"num_runs_to_save": 3})  # not for an EmailAgent
    with pytest.raises(InvalidFieldError, match=r"changes\[7\]\.fields\.num_runs_to_save"):
        plan_entry(change, ACTION, 1, "changes[7]")


def test_in_state_objects_have_no_snapshot():
    entry = plan_entry(Change("tines.action", 5, {"disabled": True}), ACTION, 1, "changes[0]")
    assert entry["status"] == "in_state" and entry["snapshot"] == {} and entry["diff"] == []


def _observed(**fields):
    from airflow_provider_fluents_tines.objects import TINES_ACTION

    return TINES_ACTION.normalize({**ACTION, **fields})


SNAPSHOT = {"disabled": True, "options": {"subject": "old", "recipients": ["a@x"]}}
CHANGE = Change("tines.action", 5, {"disabled": False, "options": {"subject": "new"}})


def test_restore_writes_back_what_shows_the_rollouts_value():
    decision = restore(CHANGE, SNAPSHOT, _observed(disabled=False, options={"subject": "new"}))
    assert decision.body == SNAPSHOT and decision.conflicts == {}


def test_restore_leaves_someone_elses_value_and_reports_it():
    decision = restore(CHANGE, SNAPSHOT, _observed(disabled=False, options={"subject": "theirs"}))
    assert decision.body == {"disabled": True}
    assert set(decision.conflicts) == {"options"}
    overwrite = restore(
        CHANGE, SNAPSHOT, _observed(disabled=False, options={"subject": "theirs"}), overwrite=True
    )
    assert overwrite.body == SNAPSHOT and overwrite.conflicts == {}


def test_restore_writes_nothing_for_an_object_at_its_snapshot():
    assert restore(CHANGE, SNAPSHOT, _observed()).body == {}


def test_a_conflict_keeps_the_fields_the_api_takes_only_with_it():
    change = Change("tines.action", 5, {"monitor_failures": True, "monitor_all_events": True})
    snapshot = {"monitor_failures": False, "monitor_all_events": True}
    decision = restore(change, snapshot, _observed(monitor_failures=True, monitor_all_events=False))
    # monitor_all_events shows neither value (someone else's), and monitor_failures goes only with it.
    assert decision.body == {} and set(decision.conflicts) == {"monitor_all_events", "monitor_failures"}


def test_a_link_change_is_restored_as_links_with_their_types():
    change = Change("tines.action", 5, {"source_ids": [3]})
    entry = plan_entry(change, ACTION, 1, "changes[0]")
    assert entry["snapshot"] == {"links_to_sources": [{"source_id": 4, "type": "DEFAULT"}]}
    moved = _observed(sources=[3], links_to_sources=[{"source_id": 3, "link_type": "DEFAULT"}])
    assert restore(change, entry["snapshot"], moved).body == entry["snapshot"]


def test_tables_star_secrets():
    change = Change("tines.action", 5, {"options": {"secret": "s3cr3t-new"}})
    entry = plan_entry(change, {**ACTION, "options": {"secret": "s3cr3t-old"}}, 1, "changes[0]")
    table = plan_table({"entries": [entry], "waves": [1], "taken_at": "", "taken_by_try": 1})
    assert "s3cr3t" not in table and "***" in table
    assert "conflict" in report_table([{"key": "k", "status": "conflict", "fields": ["a"], "message": "m"}])


def test_a_dict_with_a_key_added_is_not_at_its_snapshot():
    """The snapshot is the whole old value: {a} is not "at" {a, vip}, nor {} at anything else."""
    change = Change("fluents.number", "+14155550101", {"example_context": {"region": "us-west", "vip": True}})
    snapshot = {"example_context": {"region": "us-west"}}
    observed = {"example_context": {"region": "us-west", "vip": True}}
    assert restore(change, snapshot, observed).body == snapshot
    empty = Change("tines.action", 5, {"options": {"prompt": "p"}})
    assert restore(empty, {"options": {}}, _observed(options={"prompt": "p"})).body == {"options": {}}


def test_an_object_the_rollout_never_wrote_is_a_conflict_when_it_shows_the_desired_value():
    moved = _observed(disabled=False, options={"subject": "new"})
    decision = restore(CHANGE, SNAPSHOT, moved, maybe_written=False)
    assert decision.body == {} and set(decision.conflicts) == {"disabled", "options"}


def test_change_objects_reach_tasks_as_dicts():
    """Airflow renders templates and masks sensitive keys inside dicts, not inside dataclasses."""
    from airflow_provider_fluents_tines.rollout.tasks import RolloutPlanOperator

    task = RolloutPlanOperator(
        task_id="plan",
        changes=[Change("tines.action", 5, {"options": {"secret": "s"}})],
        conn_ids={"tines": "tines_default"},
        plan_task_id="plan",
    )
    assert task.changes == [{"kind": "tines.action", "id": 5, "fields": {"options": {"secret": "s"}}}]


def test_links_another_change_of_the_rollout_makes_are_not_a_conflict():
    """B's receivers gain A when A's change links A to B: restoring B is the rollout's own doing."""
    from airflow_provider_fluents_tines.objects import TINES_ACTION

    b = {
        **ACTION,
        "id": 7,
        "receivers": [9, 6],
        "links_to_receivers": [],
        "sources": [],
        "links_to_sources": [],
    }
    b["links_to_receivers"] = [
        {"receiver_id": 9, "link_type": "DEFAULT"},
        {"receiver_id": 6, "link_type": "DEFAULT"},
    ]
    change = Change("tines.action", 7, {"receiver_ids": [9]})
    snapshot = {"links_to_receivers": []}
    observed = TINES_ACTION.normalize(b)
    assert set(restore(change, snapshot, observed).conflicts) == {"links_to_receivers"}  # 6 looks foreign
    decision = restore(change, snapshot, observed, linked={6})
    assert decision.conflicts == {} and decision.body == snapshot
    assert TINES_ACTION.links_to({"source_ids": [4, "x"], "links_to_receivers": [{"receiver_id": 6}]}) == {
        4,
        6,
    }


def test_an_unrestorable_field_counts_as_ours_until_a_read_shows_otherwise():
    """The rollback reports it unrestorable when it shows our value, or when nobody can tell."""
    from airflow_provider_fluents_tines.objects import FLUENTS_NUMBER
    from airflow_provider_fluents_tines.rollout.plan import may_hold_desired

    number = {"phone_number": "+14155550101", "inbound_agent": "agt_a", "label": "Canary"}
    assert may_hold_desired(FLUENTS_NUMBER, "label", {"label": "Canary"}, number)
    assert not may_hold_desired(FLUENTS_NUMBER, "label", {"label": "Canary"}, {**number, "label": "Other"})
    shown_without = {key: value for key, value in number.items() if key != "label"}
    assert may_hold_desired(FLUENTS_NUMBER, "label", {"label": "Canary"}, shown_without)  # not shown
    assert may_hold_desired(FLUENTS_NUMBER, "label", {}, number)  # the desired value was a secret not kept


def test_linked_ids_match_the_rule_asked_pair_by_pair():
    """Each change's linked ids: those it links to, and those whose changes link to it (same kind only)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from airflow_provider_fluents_tines.rollout.tasks import linked_ids

    ids = st.integers(min_value=1, max_value=8)

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(ids, st.tuples(st.lists(ids, max_size=3), st.lists(ids, max_size=3)), max_size=6))
    def check(links):
        changes = [
            Change("tines.action", action, {"source_ids": sources, "receiver_ids": receivers})
            for action, (sources, receivers) in links.items()
        ]
        changes.append(Change("fluents.number", "+14155550101", {"inbound_agent": "agt_2"}))
        found = linked_ids(changes)
        for change in changes:
            kind = change.object_kind
            expected = kind.links_to(change.fields) | {
                other.id
                for other in changes
                if other.kind == change.kind
                and other.id != change.id
                and change.id in kind.links_to(other.fields)
            }
            expected.discard(change.id)
            assert found[change.key] == expected

    check()
