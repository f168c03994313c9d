"""
What a waiting sensor last saw, kept by the poke loop and the trigger alike, so that a timeout says
what was last seen and when, or that no read succeeded and why. JSON-serializable: it travels from
the worker's first poke into the trigger's kwargs and back in the trigger's timeout event.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_fluents_tines.matching import Difference, FieldDifference, format_differences


@dataclass
class WaitLog:
    """
    The last successful read (the differences it showed, or that the object was missing) and the
    last failed one, each with its epoch time.
    """

    seen_at: float | None = None
    missing: bool = False
    differences: list[FieldDifference] | None = None
    failed_at: float | None = None
    failure: str | None = None

    def saw(self, found: list[Difference]) -> None:
        self.seen_at, self.missing, self.differences = time.time(), False, [d.as_dict() for d in found]

    def saw_missing(self) -> None:
        self.seen_at, self.missing, self.differences = time.time(), True, None

    def failed(self, message: str) -> None:
        self.failed_at, self.failure = time.time(), message

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> WaitLog:
        return cls(**data) if data else cls()

    def describe(self) -> str:
        """One sentence on what the wait last saw, for a timeout message."""
        if self.seen_at is None:
            if self.failed_at is None:
                return "no read was made"
            return f"no read succeeded; the last one failed at {_clock(self.failed_at)}: {self.failure}"
        if self.missing:
            seen = f"last read at {_clock(self.seen_at)}: the object does not exist (404)"
        else:
            found = [Difference.from_dict(entry) for entry in self.differences or []]
            seen = f"last read at {_clock(self.seen_at)}: still differing: {format_differences(found)}"
        if self.failed_at is not None and self.failed_at > self.seen_at:
            seen += f"; a later read failed at {_clock(self.failed_at)}: {self.failure}"
        return seen


def _clock(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%H:%M:%S UTC")
