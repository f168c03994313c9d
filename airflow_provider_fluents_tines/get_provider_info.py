"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

_PACKAGE = "airflow_provider_fluents_tines"


def _settings_fields(conn_type: str) -> dict[str, Any]:
    """The connection extras both hooks read as settings (never as HTTP headers)."""
    return {
        "timeout": {
            "label": "Request timeout (s)",
            "description": "Seconds each HTTP request may take, its whole answer included (default 30).",
            "schema": {"type": ["number", "null"], "minimum": 0},
        },
        "max_attempts": {
            "label": "Max attempts",
            "description": "Attempts per API call, the first included, on 429, 5xx and network errors (default 5).",
            "schema": {"type": ["integer", "null"], "minimum": 1},
        },
        "max_retry_wait": {
            "label": "Max retry time (s)",
            "description": "The longest one API call may spend retrying, in seconds (default 120).",
            "schema": {"type": ["number", "null"], "minimum": 0},
        },
        "requests_per_minute": {
            "label": "Requests per minute",
            "description": "Requests each Airflow process may start per minute on this host and key "
            + (
                "(default 100: Tines' limit on actions)."
                if conn_type == "tines"
                else "(default: no limit; Fluents documents none)."
            ),
            "schema": {"type": ["integer", "null"], "minimum": 1},
        },
        "allow_insecure_http": {
            "label": "Allow plain http",
            "description": f"Allow an http:// {conn_type} host that is not loopback. Sends the API key unencrypted.",
            "schema": {"type": ["boolean", "null"]},
        },
    }


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-fluents-tines",
        "name": "Fluents and Tines",
        "description": "Hooks, update operators, state sensors and a local API sandbox for "
        "`Fluents <https://fluents.ai>`__ and `Tines <https://www.tines.com>`__.",
        "integrations": [
            {
                "integration-name": "Fluents",
                "external-doc-url": "https://docs.fluents.ai",
                "tags": ["service"],
            },
            {
                "integration-name": "Tines",
                "external-doc-url": "https://www.tines.com/docs/api",
                "tags": ["service"],
            },
        ],
        "hooks": [
            {"integration-name": "Fluents", "python-modules": [f"{_PACKAGE}.hooks.fluents"]},
            {"integration-name": "Tines", "python-modules": [f"{_PACKAGE}.hooks.tines"]},
        ],
        "operators": [
            # The rollout's tasks act on both APIs' objects.
            {
                "integration-name": "Fluents",
                "python-modules": [f"{_PACKAGE}.operators.fluents", f"{_PACKAGE}.rollout.tasks"],
            },
            {
                "integration-name": "Tines",
                "python-modules": [f"{_PACKAGE}.operators.tines", f"{_PACKAGE}.rollout.tasks"],
            },
        ],
        "sensors": [
            {"integration-name": "Fluents", "python-modules": [f"{_PACKAGE}.sensors.fluents"]},
            {"integration-name": "Tines", "python-modules": [f"{_PACKAGE}.sensors.tines"]},
        ],
        "triggers": [
            {
                "integration-name": "Fluents",
                "python-modules": [
                    f"{_PACKAGE}.triggers.state",
                    f"{_PACKAGE}.triggers.wave",
                    f"{_PACKAGE}.triggers.watch",
                ],
            },
            {
                "integration-name": "Tines",
                "python-modules": [
                    f"{_PACKAGE}.triggers.state",
                    f"{_PACKAGE}.triggers.wave",
                    f"{_PACKAGE}.triggers.watch",
                ],
            },
        ],
        "connection-types": [
            {
                "connection-type": "fluents",
                "hook-class-name": f"{_PACKAGE}.hooks.fluents.FluentsHook",
                "hook-name": "Fluents",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port", "extra"],
                    "relabeling": {"host": "API URL", "password": "API key"},
                    "placeholders": {
                        "host": "https://api.fluents.ai (default when empty)",
                        "password": "sk_live_...",
                    },
                },
                "conn-fields": _settings_fields("fluents"),
            },
            {
                "connection-type": "tines",
                "hook-class-name": f"{_PACKAGE}.hooks.tines.TinesHook",
                "hook-name": "Tines",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port", "extra"],
                    "relabeling": {"host": "Tenant domain", "password": "API key"},
                    "placeholders": {
                        "host": "your-tenant.tines.com (or https://tines.example.com)",
                        "password": "Tines API key",
                    },
                },
                "conn-fields": _settings_fields("tines"),
            },
        ],
    }
