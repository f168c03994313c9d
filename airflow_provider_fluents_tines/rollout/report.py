"""The rollout's tables, as text for logs, the approval page and the demo. Values are shown starred."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_fluents_tines.redaction import redact

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.rollout.plan import Plan


def _cell(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(redact(value), sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table."""
    cells = [[str(cell) for cell in header], *[[_cell(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def plan_table(plan: Plan, limit: int = 200) -> str:
    """One row per changed field (``in state`` for objects that need nothing), waves in order."""
    rows: list[list[Any]] = []
    for entry in plan["entries"][:limit]:
        if not entry["diff"]:
            rows.append([entry["wave"], entry["key"], "", "", "", "in state"])
            continue
        for difference in entry["diff"]:
            name = difference["field"]
            note = "unrestorable" if name in entry["unrestorable"] else ""
            rows.append(
                [entry["wave"], entry["key"], name, difference["current"], difference["requested"], note]
            )
    text = table(("wave", "object", "field", "now", "desired", "note"), rows)
    if len(plan["entries"]) > limit:
        text += f"\n... and {len(plan['entries']) - limit} more objects"
    counts = ", ".join(f"wave {n}: {size}" for n, size in enumerate(plan["waves"], 1))
    return f"{text}\n{len(plan['entries'])} object(s) ({counts})"


def results_table(results: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ("object", "status", "message"), [[r["key"], r["status"], r.get("message", "")] for r in results]
    )


def report_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ("object", "status", "fields", "message"),
        [[r["key"], r["status"], ", ".join(r.get("fields", [])), r.get("message", "")] for r in rows],
    )
