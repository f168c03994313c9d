"""
Test set-up: an Airflow home (configured before anything imports Airflow), the sandbox fixtures, and
a migrated sqlite metadata DB for the dag.test() tests that ask for it.

The home is the caller's ``AIRFLOW_HOME`` when one is given (its metadata DB is reset only if the
tests made it, see ``airflow_db``), else a temporary folder removed when the session ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Marks a home whose metadata DB the tests made, and so may reset.
_TEST_HOME_MARKER = ".fluents-tines-test-home"

_CALLER_HOME = os.environ.get("AIRFLOW_HOME")
_HOME = Path(_CALLER_HOME) if _CALLER_HOME else Path(tempfile.mkdtemp(prefix="fluents-tines-airflow-home-"))
_HOME.mkdir(parents=True, exist_ok=True)
# The metadata DB may be reset only in a home the tests made, or one with no Airflow in it yet.
_MAY_RESET_DB = (
    not _CALLER_HOME
    or (_HOME / _TEST_HOME_MARKER).exists()
    or not (
        (_HOME / "airflow.db").exists()
        or (_HOME / "airflow.cfg").exists()
        or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    )
)
if _MAY_RESET_DB:
    (_HOME / _TEST_HOME_MARKER).touch()
DAGS_FOLDER = _HOME / "fluents-tines-test-dags"
DAGS_FOLDER.mkdir(exist_ok=True)
for dag_file in (ROOT / "example_dags").glob("*.py"):
    shutil.copy(dag_file, DAGS_FOLDER / dag_file.name)

os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
os.environ["FLUENTS_TINES_POKE_INTERVAL"] = "0.2"  # the example DAGs read it at import
os.environ["FLUENTS_TINES_SETTLE_SECONDS"] = "1"
os.environ["FLUENTS_TINES_VISIBILITY_LAG"] = "1"  # the example rollout's, against sandboxes lagging <= 0.5 s
os.environ.pop("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", None)
if not os.environ.get("AIRFLOW__CORE__FERNET_KEY"):
    # As deployments have: connections the CLI stores are encrypted, and every process must read them.
    from cryptography.fernet import Fernet

    os.environ["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()

import pytest  # noqa: E402

pytest_plugins = ["airflow_provider_fluents_tines.sandbox.pytest_plugin"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _CALLER_HOME:
        shutil.rmtree(DAGS_FOLDER, ignore_errors=True)
    else:
        shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """
    A freshly migrated sqlite metadata DB, once per session (only tests that need it pay for it).

    In a caller's home that already held Airflow before the tests, nothing is reset: the session
    stops instead of wiping someone's DB.
    """
    from airflow.utils import db

    if not _MAY_RESET_DB:
        pytest.exit(
            f"AIRFLOW_HOME={_HOME} already holds an Airflow set-up these tests did not make, and "
            "resetting its metadata DB could destroy someone's data: unset AIRFLOW_HOME or point it "
            "at an empty folder.",
            returncode=2,
        )
    db.resetdb()
    return _HOME


@pytest.fixture
def fast_retries():
    """A retry policy with millisecond backoff, so retry tests measure counts, not patience."""
    from airflow_provider_fluents_tines.hooks.base import RetryPolicy

    return RetryPolicy(max_attempts=5, max_retry_wait=30, backoff_base=0.01, backoff_max=0.05)
