"""Provider discovery through Airflow's ProvidersManager and the airflow CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="module")
def providers_manager():
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def test_provider_is_discovered(providers_manager):
    info = providers_manager.providers["airflow-provider-fluents-tines"]
    assert info.data["name"] == "Fluents and Tines"


@pytest.mark.parametrize(
    ("conn_type", "hook_class", "label"),
    [
        ("fluents", "airflow_provider_fluents_tines.hooks.fluents.FluentsHook", "API URL"),
        ("tines", "airflow_provider_fluents_tines.hooks.tines.TinesHook", "Tenant domain"),
    ],
)
def test_connection_types_and_forms(providers_manager, conn_type, hook_class, label):
    hook = providers_manager.hooks[conn_type]
    assert hook.hook_class_name == hook_class
    assert hook.connection_testable is True
    behaviour = providers_manager.field_behaviours[conn_type]
    assert behaviour["relabeling"] == {"host": label, "password": "API key"}
    assert {"login", "schema", "port"} <= set(behaviour["hidden_fields"])
    widgets = providers_manager.connection_form_widgets
    assert {f"extra__{conn_type}__{name}" for name in ("timeout", "max_attempts", "max_retry_wait")} <= set(
        widgets
    )


def _airflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIRFLOW, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_cli_lists_the_provider_hooks_and_behaviours():
    listed = _airflow("providers", "list")
    assert listed.returncode == 0, listed.stderr
    assert "airflow-provider-fluents-tines" in listed.stdout
    hooks = _airflow("providers", "hooks", "--output", "plain")
    assert "FluentsHook" in hooks.stdout and "TinesHook" in hooks.stdout
    behaviours = _airflow("providers", "behaviours", "--output", "plain")
    assert "fluents" in behaviours.stdout and "tines" in behaviours.stdout


def test_cli_connection_test_against_the_sandbox(fluents_tines_sandbox):
    env = {**fluents_tines_sandbox.connection_env(), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    for conn_id in ("fluents_default", "tines_default"):
        result = _airflow("connections", "test", conn_id, env=env)
        assert "Connection success!" in result.stdout, result.stdout + result.stderr
    assert [e["path"] for e in fluents_tines_sandbox.state.journal()] == ["/v1/actions/list", "/api/v1/info"]
