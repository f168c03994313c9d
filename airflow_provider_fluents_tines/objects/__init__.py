"""
One typed description per kind of API object (:class:`ObjectKind`): ``FLUENTS_ACTION`` and
``FLUENTS_NUMBER`` in ``objects.fluents``, ``TINES_ACTION`` in ``objects.tines``. Hooks, operators,
sensors and the trigger all address objects through them. Light to import: no HTTP stack, and
neither vendor's module imports the other's.
"""

from __future__ import annotations

from airflow_provider_fluents_tines.objects.base import ListPage, ObjectKind, Request
from airflow_provider_fluents_tines.objects.fluents import FLUENTS_ACTION, FLUENTS_NUMBER
from airflow_provider_fluents_tines.objects.tines import TINES_ACTION

#: Every kind, by its key (``"tines.action"``): the names trigger kwargs and rollout changes use.
KINDS: dict[str, ObjectKind] = {kind.key: kind for kind in (FLUENTS_ACTION, FLUENTS_NUMBER, TINES_ACTION)}

__all__ = ["FLUENTS_ACTION", "FLUENTS_NUMBER", "KINDS", "TINES_ACTION", "ListPage", "ObjectKind", "Request"]
