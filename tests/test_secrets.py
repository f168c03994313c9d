"""
Secrets inside API objects (a Tines webhook's `secret`): never in logs, returned objects or the diff and
planned-request XComs; Fernet-encrypted in previous values, so the rollback can still restore them.
The sandbox journal and state are the witnesses.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_fluents_tines.exceptions import ApiClientError, InvalidFieldError
from airflow_provider_fluents_tines.hooks.tines import TinesHook
from airflow_provider_fluents_tines.operators.base import (
    DIFF_XCOM_KEY,
    PLANNED_REQUEST_XCOM_KEY,
    PREVIOUS_VALUES_XCOM_KEY,
    WRITTEN_VALUES_XCOM_KEY,
)
from airflow_provider_fluents_tines.operators.tines import TinesUpdateActionOperator
from airflow_provider_fluents_tines.sensors.tines import TinesActionSensor

from .test_operators import RecordingTI, run

WEBHOOK = 90001
OLD_SECRET = "whsec_old_7f3a9c1e5b"
NEW_SECRET = "whsec_new_2d8e4b6a0c"


@pytest.fixture
def webhook(fluents_tines_sandbox):
    """The seed's webhook action, its secret made distinctive so that any leak is found by search."""
    TinesHook().update_action(
        WEBHOOK, options={"path": "phishing-report", "secret": OLD_SECRET, "verbs": "post"}
    )
    fluents_tines_sandbox.state.clear_journal()
    return fluents_tines_sandbox


def _secret_now(sandbox) -> str:
    return sandbox.state.snapshot()["tines"]["actions"][WEBHOOK]["options"]["secret"]


def _everything(ti, result, caplog, capsys) -> str:
    return json.dumps([ti.pushed, result], default=str) + caplog.text + "".join(capsys.readouterr())


def test_a_changed_secret_is_never_shown_and_is_restored_from_encrypted_previous_values(
    webhook, caplog, capsys
):
    new_options = {"path": "phishing-report-v2", "secret": NEW_SECRET, "verbs": "post"}
    result, ti = run(TinesUpdateActionOperator(task_id="t", action_id=WEBHOOK, options=new_options))
    assert _secret_now(webhook) == NEW_SECRET  # the write itself carries the secret, as it must
    shown = _everything(ti, result, caplog, capsys)
    assert OLD_SECRET not in shown and NEW_SECRET not in shown
    assert result["options"] == {"path": "phishing-report-v2", "secret": "***", "verbs": "post"}
    assert "options.path" in caplog.text + shown and 'options.secret: "***" -> "***"' in shown
    previous = ti.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"]["options"]
    assert previous["path"] == "phishing-report" and set(previous["secret"]) == {
        "__fluents_tines_encrypted__"
    }

    restored, _ = run(
        TinesUpdateActionOperator(task_id="rb", action_id=WEBHOOK, restore_from="t"),
        RecordingTI(ti.pushed[PREVIOUS_VALUES_XCOM_KEY], ti.pushed.get(WRITTEN_VALUES_XCOM_KEY)),
    )
    assert _secret_now(webhook) == OLD_SECRET and restored["options"]["secret"] == "***"
    assert webhook.state.journal(method="PUT")[-1]["body"]["options"]["secret"] == OLD_SECRET


def test_a_dry_run_shows_secrets_as_stars(webhook, caplog, capsys):
    new_options = {"path": "p2", "secret": NEW_SECRET, "verbs": "post"}
    result, ti = run(
        TinesUpdateActionOperator(task_id="t", action_id=WEBHOOK, options=new_options, dry_run=True)
    )
    assert ti.pushed[PLANNED_REQUEST_XCOM_KEY]["body"]["options"]["secret"] == "***"
    assert {entry["field"] for entry in ti.pushed[DIFF_XCOM_KEY]} == {"options"}
    shown = _everything(ti, result, caplog, capsys)
    assert OLD_SECRET not in shown and NEW_SECRET not in shown
    assert webhook.state.journal(method="PUT") == []


def test_without_a_fernet_key_a_secret_change_needs_an_opt_in(webhook, monkeypatch):
    monkeypatch.setattr("airflow_provider_fluents_tines.redaction.airflow_fernet", lambda: None)
    new_options = {"path": "p2", "secret": NEW_SECRET, "verbs": "post"}
    with pytest.raises(InvalidFieldError, match="options: holds a secret a rollback would need"):
        run(TinesUpdateActionOperator(task_id="t", action_id=WEBHOOK, options=new_options))
    assert webhook.state.journal(method="PUT") == [] and _secret_now(webhook) == OLD_SECRET

    _, ti = run(
        TinesUpdateActionOperator(
            task_id="t", action_id=WEBHOOK, options=new_options, allow_unrestorable_secrets=True
        )
    )
    assert ti.pushed[PREVIOUS_VALUES_XCOM_KEY]["fields"]["options"]["secret"] == "***"
    with pytest.raises(InvalidFieldError, match="restore_from: the old secrets in options were not kept"):
        run(
            TinesUpdateActionOperator(task_id="rb", action_id=WEBHOOK, restore_from="t"),
            RecordingTI(ti.pushed[PREVIOUS_VALUES_XCOM_KEY], ti.pushed.get(WRITTEN_VALUES_XCOM_KEY)),
        )
    assert _secret_now(webhook) == NEW_SECRET  # nothing half-restored: "***" was never written


def test_a_sensor_returns_the_object_with_secrets_starred(webhook):
    sensor = TinesActionSensor(
        task_id="s", action_id=WEBHOOK, expected={"options": {"path": "phishing-report"}}
    )
    done = sensor.poke({})
    assert done and done.xcom_value["options"]["secret"] == "***"


def test_a_server_echoing_the_request_body_has_its_secrets_scrubbed(httpserver, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_TINES_DEFAULT",
        json.dumps(
            {"conn_type": "tines", "host": httpserver.url_for("/"), "password": "tines-key-0123456789"}
        ),
    )
    httpserver.expect_request("/api/v1/actions/7", method="PUT").respond_with_json(
        {"errors": [{"message": f"options.secret {NEW_SECRET!r} is not allowed"}]}, status=422
    )
    with pytest.raises(ApiClientError) as err:
        TinesHook().update_action(7, options={"secret": NEW_SECRET})
    assert NEW_SECRET not in str(err.value) and "options.secret '***' is not allowed" in str(err.value)
