"""
One typed description per kind of API object (:class:`ObjectKind`): ``FLUENTS_ACTION`` and
``FLUENTS_NUMBER`` in ``objects.fluents``, ``TINES_ACTION`` in ``objects.tines``. Hooks, operators,
sensors and the trigger all address objects through them. Light to import: no HTTP stack, and
neither vendor's module imports the other's.
"""

from __future__ import annotations

from airflow_provider_fluents_tines.objects.base import ObjectKind, Request

__all__ = ["ObjectKind", "Request"]
