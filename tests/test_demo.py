"""The main command's before/after table (scripts/demo.py) lists exactly what a run changed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from airflow_provider_fluents_tines.sandbox import SandboxState


def test_changes_lists_each_changed_field_by_dotted_path():
    spec = importlib.util.spec_from_file_location(
        "demo", Path(__file__).resolve().parent.parent / "scripts" / "demo.py"
    )
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    state = SandboxState()
    before = state.snapshot()
    state.update_fluents_number(
        "+14155550101",
        {"inbound_agent": "agt_front_desk_v2", "example_context": {"region": "us-west", "queue": "support"}},
    )
    state.update_tines_action(
        90005,
        {"disabled": False, "options": {**before["tines"]["actions"][90005]["options"], "subject": "New"}},
    )
    rows = demo.changes(before, state.snapshot())
    assert rows == [
        ("fluents number +14155550101", "inbound_agent", '"agt_front_desk_v1"', '"agt_front_desk_v2"'),
        ("tines action 90005", "options.subject", '"High severity phishing report"', '"New"'),
        ("tines action 90005", "disabled", "true", "false"),
    ]
