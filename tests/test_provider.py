"""Provider discovery through Airflow's ProvidersManager and the airflow CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_fluents_tines.get_provider_info import get_provider_info
from airflow_provider_fluents_tines.version_compat import AIRFLOW_V_3_2_PLUS

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="module")
def providers_manager():
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


@pytest.fixture(scope="module")
def hook_registry():
    """conn_type -> HookInfo; from 3.2 the Task SDK's (``ProvidersManager.hooks`` is deprecated there)."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        return ProvidersManagerTaskRuntime().hooks
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager().hooks


def _needs_form_support() -> None:
    """Airflow 3.0 and 3.1 build connection forms from the hooks' wtforms fields, only where wtforms imports."""
    if not AIRFLOW_V_3_2_PLUS:
        pytest.importorskip(
            "wtforms", reason="Airflow < 3.2 reads connection forms only with wtforms installed"
        )


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
def test_connection_types_and_forms(providers_manager, hook_registry, conn_type, hook_class, label):
    _needs_form_support()
    hook = hook_registry[conn_type]
    assert hook.hook_class_name == hook_class
    assert hook.connection_testable is True
    behaviour = providers_manager.field_behaviours[conn_type]
    assert behaviour["relabeling"] == {"host": label, "password": "API key"}
    assert {"login", "schema", "port"} <= set(behaviour["hidden_fields"])
    widgets = providers_manager.connection_form_widgets
    assert {f"extra__{conn_type}__{name}" for name in ("timeout", "max_attempts", "max_retry_wait")} <= set(
        widgets
    )


# What the API server answers for the UI's connection form (GET /ui/connections/hook_meta), computed in a
# fresh process as the API server does (on 3.0 and 3.1 it mocks wtforms before ProvidersManager first imports
# the hooks); also records any warning Airflow raises about this provider's hooks while importing them all.
_UI_FORM_PROBE = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    forms = {m.connection_type: m.model_dump() for m in HookMetaService.hook_meta_data()}
    from airflow.providers_manager import ProvidersManager
    ProvidersManager().field_behaviours  # imports every hook, as the CLI does
ours = [str(w.message) for w in caught if "airflow_provider_fluents_tines" in str(w.message)]
print(json.dumps({"forms": {k: forms.get(k) for k in ("fluents", "tines")}, "warnings": ours}, default=str))
"""


def test_the_ui_connection_form_on_this_airflow_version():
    _needs_form_support()
    result = subprocess.run(
        [sys.executable, "-c", _UI_FORM_PROBE], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["warnings"] == []
    for declared in get_provider_info()["connection-types"]:
        form = probe["forms"][declared["connection-type"]]
        assert form is not None, f"no form for {declared['connection-type']}"
        assert form["hook_class_name"] == declared["hook-class-name"]
        behaviour = declared["ui-field-behaviour"]
        fields = form["standard_fields"]
        for name, title in behaviour["relabeling"].items():
            assert fields[name]["title"] == title and fields[name]["hidden"] is False
        for name in ("login", "port"):
            assert fields[name]["hidden"] is True
        assert fields["url_schema"]["hidden"] is True
        assert fields["host"]["placeholder"] == behaviour["placeholders"]["host"]
        extras = form["extra_fields"]
        assert set(extras) == set(declared["conn-fields"])
        for name, spec in declared["conn-fields"].items():
            assert extras[name]["schema"]["title"] == spec["label"]
            assert extras[name]["description"] == spec["description"]
            # optional: the form saves untouched fields as null
            assert "null" in extras[name]["schema"]["type"]


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


@pytest.mark.parametrize("ui_form_extras", [False, True], ids=["env-json", "ui-form-nulls"])
def test_cli_connection_test_against_the_sandbox(fluents_tines_sandbox, ui_form_extras):
    env = {**fluents_tines_sandbox.connection_env(), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    if ui_form_extras:
        # The connection form saves every declared extra the user did not touch as null.
        from airflow_provider_fluents_tines.get_provider_info import get_provider_info

        for conn_type in get_provider_info()["connection-types"]:
            name = f"AIRFLOW_CONN_{conn_type['connection-type'].upper()}_DEFAULT"
            fields = json.loads(env[name])
            fields["extra"] = dict.fromkeys(conn_type["conn-fields"])
            env[name] = json.dumps(fields)
    for conn_id in ("fluents_default", "tines_default"):
        result = _airflow("connections", "test", conn_id, env=env)
        assert "Connection success!" in result.stdout, result.stdout + result.stderr
    assert [e["path"] for e in fluents_tines_sandbox.state.journal()] == ["/v1/actions/list", "/api/v1/info"]
