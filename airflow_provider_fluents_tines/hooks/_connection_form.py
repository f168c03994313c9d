"""
The connection form for Airflow 3.0 and 3.1, built from ``get_provider_info()`` so it is declared once.

From 3.2 on Airflow reads the form from provider info (``conn-fields``, ``ui-field-behaviour``) and skips
these hook methods; 3.0 and 3.1 read only the hooks' ``get_ui_field_behaviour`` and
``get_connection_form_widgets``, and only where ``wtforms`` is importable (the API server mocks it then).
Airflow takes the methods only from the hook class's own ``__dict__`` (not from a base or mixin), so
each hook defines the two classmethods and delegates here.
"""

from __future__ import annotations

from typing import Any


def _connection_type(conn_type: str) -> dict[str, Any]:
    from airflow_provider_fluents_tines.get_provider_info import get_provider_info

    for entry in get_provider_info()["connection-types"]:
        if entry["connection-type"] == conn_type:
            return entry
    raise KeyError(f"no connection type {conn_type!r} in get_provider_info()")


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """``ui-field-behaviour`` of provider info in the hook method's shape (snake_case keys)."""
    behaviour = _connection_type(conn_type).get("ui-field-behaviour", {})
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }


def connection_form_widgets(conn_type: str) -> dict[str, Any]:
    """
    ``conn-fields`` of provider info as wtforms fields, keyed by extra name.

    Airflow 3.0 and 3.1 accept only ``StringField``, ``IntegerField``, ``BooleanField`` and
    ``PasswordField`` (another class drops the whole hook), so a ``number`` is a ``StringField``:
    the hooks read numbers given as strings. Every field is optional (saved as null when untouched).
    """
    from wtforms import BooleanField, IntegerField, PasswordField, StringField
    from wtforms.validators import Optional

    widgets: dict[str, Any] = {}
    for name, spec in _connection_type(conn_type).get("conn-fields", {}).items():
        schema = spec.get("schema", {})
        types = schema.get("type", "string")
        types = {types} if isinstance(types, str) else set(types)
        kwargs = {"label": spec.get("label", name), "description": spec.get("description", "")}
        if "boolean" in types:
            widgets[name] = BooleanField(**kwargs)
        elif "integer" in types:
            widgets[name] = IntegerField(validators=[Optional()], **kwargs)
        elif schema.get("format") == "password":
            widgets[name] = PasswordField(validators=[Optional()], **kwargs)
        else:
            widgets[name] = StringField(validators=[Optional()], **kwargs)
    return widgets
