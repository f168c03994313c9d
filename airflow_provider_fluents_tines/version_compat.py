"""
The one place for Airflow names that moved between Airflow 3 minors (the pattern of Airflow's own providers).

Import them from here, never from their Airflow location:

- the task exceptions (``TaskDeferred`` included) and ``conf`` are in the Task SDK from 3.2
  (``airflow.sdk.exceptions``, ``airflow.sdk.conf``); 3.0 and 3.1 have them in ``airflow.exceptions`` and
  ``airflow.configuration`` (3.1 has ``AirflowException`` in both, the same class, but not the others);
- ``mask_secret`` is in ``airflow.sdk.log`` from 3.1 (3.0.6 has an alias there); 3.0 keeps it, and ``redact``,
  in ``airflow.sdk.execution_time.secrets_masker``, the task process's masker (from 3.0.6 it also tells the
  supervisor process, which writes the task log); ``redact`` is in ``airflow.sdk._shared.secrets_masker`` from 3.1;
- ``get_fernet`` is in ``airflow.sdk.crypto`` from 3.2, ``airflow.models.crypto`` before (imported when called).

Each group is taken from one place, so the classes always match the ones the running Airflow raises and catches.
Cheap to import: DAG files import the operators, which import this.
"""

from __future__ import annotations

from typing import Any


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    """``(major, minor, micro)`` of the running Airflow, pre-release and local parts dropped."""
    from airflow import __version__
    from packaging.version import Version

    version = Version(__version__)
    return version.major, version.minor, version.micro


AIRFLOW_V_3_1_PLUS = get_base_airflow_version_tuple() >= (3, 1, 0)
AIRFLOW_V_3_2_PLUS = get_base_airflow_version_tuple() >= (3, 2, 0)
AIRFLOW_V_3_3_PLUS = get_base_airflow_version_tuple() >= (3, 3, 0)

try:  # Task SDK 1.2 (Airflow 3.2) and newer
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
except ImportError:  # Airflow 3.0 and 3.1
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )

try:  # Airflow 3.2 and newer
    from airflow.sdk import conf
except ImportError:  # Airflow 3.0 and 3.1
    from airflow.configuration import conf  # type: ignore[assignment]

if AIRFLOW_V_3_1_PLUS:  # masks in the task process and tells the supervisor process
    from airflow.sdk._shared.secrets_masker import redact
    from airflow.sdk.log import mask_secret
else:  # Airflow 3.0: the implementation (3.0.6's airflow.sdk.log.mask_secret is an alias of it)
    from airflow.sdk.execution_time.secrets_masker import (  # type: ignore[no-redef]
        mask_secret,
        redact,
    )


def get_fernet() -> Any:
    """Airflow's Fernet (``[core] fernet_key``): the Task SDK's from 3.2, ``airflow.models.crypto``'s before."""
    try:
        from airflow.sdk.crypto import get_fernet as _get_fernet
    except ImportError:  # Airflow 3.0 and 3.1
        from airflow.models.crypto import get_fernet as _get_fernet
    return _get_fernet()


__all__ = [
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "TaskDeferred",
    "conf",
    "get_base_airflow_version_tuple",
    "get_fernet",
    "mask_secret",
    "redact",
]
