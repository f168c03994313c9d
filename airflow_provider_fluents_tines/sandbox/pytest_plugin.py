"""
Pytest fixtures for testing DAGs against the sandbox.

Enable them with ``pytest_plugins = ["airflow_provider_fluents_tines.sandbox.pytest_plugin"]`` in
your ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_fluents_tines.sandbox import RateLimit, SandboxServer


@pytest.fixture(scope="session")
def fluents_tines_sandbox_server() -> Iterator[SandboxServer]:
    """One sandbox server for the whole test session."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def fluents_tines_sandbox(
    fluents_tines_sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """
    The session's sandbox, reset to the default seed and the default knobs (no visibility lag, the
    rate limit off at 100 requests a minute, numbers read embedded), with ``fluents_default`` and
    ``tines_default`` pointing at it for the length of the test. The hooks' request budgets of the
    test process start empty, as in a new process.
    """
    from airflow_provider_fluents_tines.hooks.budget import forget_budgets

    server = fluents_tines_sandbox_server
    forget_budgets()
    server.state.reset()
    server.state.configure(visibility_lag=0.0, rate_limit=RateLimit(), fluents_number_shape="embedded")
    for name, value in server.connection_env().items():
        monkeypatch.setenv(name, value)
    yield server
    server.state.clear_faults()
