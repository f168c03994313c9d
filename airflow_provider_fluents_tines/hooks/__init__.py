"""Hooks for the Fluents and Tines APIs. Import the service modules; this package stays cheap to import."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.base import BaseServiceHook

_PACKAGE = __name__ + "."


def load_hook_class(dotted_path: str) -> type[BaseServiceHook]:
    """
    Import one of this provider's hook classes by dotted path (operators and triggers hold paths, so
    that DAG parsing and trigger serialization never import the HTTP stack).
    """
    if not dotted_path.startswith(_PACKAGE):
        raise ValueError(f"{dotted_path!r} is not a hook of this provider")
    module_name, _, class_name = dotted_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)
