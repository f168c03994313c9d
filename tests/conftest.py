"""
Test set-up: an isolated AIRFLOW_HOME (configured before anything imports Airflow), the sandbox
fixtures, and a migrated sqlite metadata DB for the dag.test() tests that ask for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="fluents-tines-airflow-home-"))
DAGS_FOLDER = _HOME / "dags"
DAGS_FOLDER.mkdir()
for source in (ROOT / "example_dags", ROOT / "tests" / "dags"):
    for dag_file in source.glob("*.py"):
        shutil.copy(dag_file, DAGS_FOLDER / dag_file.name)

os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
os.environ["FLUENTS_TINES_POKE_INTERVAL"] = "0.2"  # the example DAGs read it at import
os.environ.pop("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", None)

import pytest  # noqa: E402

pytest_plugins = ["airflow_provider_fluents_tines.sandbox.pytest_plugin"]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A freshly migrated sqlite metadata DB, once per session (only tests that need it pay for it)."""
    from airflow.utils import db

    db.resetdb()
    return _HOME


@pytest.fixture
def fast_retries():
    """A retry policy with millisecond backoff, so retry tests measure counts, not patience."""
    from airflow_provider_fluents_tines.hooks.base import RetryPolicy

    return RetryPolicy(max_attempts=5, max_retry_wait=30, backoff_base=0.01, backoff_max=0.05)
