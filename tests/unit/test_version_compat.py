"""The names that moved between Airflow 3 minors resolve to the ones the running Airflow really uses."""

from __future__ import annotations

import airflow
import pytest
from packaging.version import Version

from airflow_provider_fluents_tines import version_compat


def test_version_flags_follow_the_running_airflow():
    release = Version(airflow.__version__).release
    assert version_compat.get_base_airflow_version_tuple()[:2] == release[:2]
    assert version_compat.AIRFLOW_V_3_1_PLUS is (release[:2] >= (3, 1))
    assert version_compat.AIRFLOW_V_3_2_PLUS is (release[:2] >= (3, 2))
    assert version_compat.AIRFLOW_V_3_3_PLUS is (release[:2] >= (3, 3))


@pytest.mark.parametrize(
    "name",
    ["AirflowFailException", "AirflowRescheduleException", "AirflowSensorTimeout", "AirflowSkipException"],
)
def test_task_exceptions_are_the_classes_airflow_sensors_raise(name):
    import airflow.sdk.bases.sensor as airflow_sensor

    assert getattr(version_compat, name) is getattr(airflow_sensor, name)
    assert issubclass(getattr(version_compat, name), version_compat.AirflowException)


def test_task_deferred_is_what_defer_raises():
    from airflow.sdk import BaseOperator
    from airflow.triggers.base import BaseTrigger

    class Trigger(BaseTrigger):
        def serialize(self):
            return f"{__name__}.Trigger", {}

        async def run(self):  # pragma: no cover - never run
            yield

    with pytest.raises(version_compat.TaskDeferred):
        BaseOperator(task_id="t").defer(trigger=Trigger(), method_name="execute_complete")


def test_mask_secret_registers_with_the_masker_that_redacts_logs():
    key = "sk_live_version_compat_4f1c9a"
    version_compat.mask_secret(key)
    assert version_compat.redact(f"Authorization: Bearer {key}") == "Authorization: Bearer ***"


def test_conf_reads_the_airflow_configuration(monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert version_compat.conf.getboolean("operators", "default_deferrable", fallback=False) is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert version_compat.conf.getboolean("operators", "default_deferrable", fallback=True) is False


def test_get_fernet_is_airflows():
    fernet = version_compat.get_fernet()
    assert hasattr(fernet, "encrypt") and hasattr(fernet, "decrypt")
