"""The shared matcher's formatting of differences (pure logic: no server)."""

from __future__ import annotations

from airflow_provider_fluents_tines.matching import (
    MISSING,
    Difference,
    differences,
    format_differences,
    leaf_differences,
)


def test_leaf_differences_descend_into_dicts_and_equal_length_lists():
    requested = {"options": {"subject": "new", "recipients": ["a", "c"], "extra": 1}, "disabled": False}
    current = {"options": {"subject": "old", "recipients": ["a", "b"], "body": "x"}, "disabled": True}
    leaves = leaf_differences(differences(requested, current, subset=False))
    assert leaves == [
        Difference("options.subject", "new", "old"),
        Difference("options.recipients[1]", "c", "b"),
        Difference("options.extra", 1, MISSING),
        Difference("options.body", MISSING, "x"),
        Difference("disabled", False, True),
    ]
    assert format_differences(leaves) == (
        'options.subject: "old" -> "new"; options.recipients[1]: "b" -> "c"; '
        'options.extra: <missing> -> 1; options.body: "x" -> <missing>; disabled: true -> false'
    )


def test_lists_of_other_lengths_and_type_changes_stay_whole():
    leaves = leaf_differences(
        differences(
            {"ids": [1, 2, 3], "schedule": None}, {"ids": [1, 2], "schedule": [{"cron": "x"}]}, subset=False
        )
    )
    assert leaves == [Difference("ids", [1, 2, 3], [1, 2]), Difference("schedule", None, [{"cron": "x"}])]


def test_booleans_never_equal_integers_at_any_depth():
    assert leaf_differences([Difference("o", {"n": 1}, {"n": True})]) == [Difference("o.n", 1, True)]


def test_a_sensitive_key_holding_dots_is_starred():
    found = differences(
        {"options": {"api.key": "rotated-456"}}, {"options": {"api.key": "live-123"}}, subset=True
    )
    assert found[0].as_dict() == {"field": "options.api.key", "current": "***", "requested": "***"}
    assert "live-123" not in format_differences(found) and "rotated-456" not in format_differences(found)
