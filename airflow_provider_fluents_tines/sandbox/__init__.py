"""
A local, stateful emulator of the Fluents and Tines endpoints this provider uses.

Start it with ``python -m airflow_provider_fluents_tines.sandbox``, or in-process::

    with SandboxServer() as sandbox:
        os.environ.update(sandbox.connection_env())
        ...
        assert sandbox.state.journal(method="PUT")

It binds loopback only (``127.0.0.0/8``, ``::1``, ``localhost``) unless told otherwise with
``allow_non_loopback=True`` (CLI: ``--allow-non-loopback``): its API keys are published defaults and
its admin API has no authentication.

Knobs (``state.configure``, ``PUT /_sandbox/config``): ``visibility_lag``, ``rate_limit`` and
``fluents_number_shape`` (``embedded``, the default, or ``normalized``: how ``GET /v1/numbers``
shows the agent and the telephony account connection); see ``state.py``. Bad admin input is
refused whole (``ValueError`` in-process, 422 over HTTP).

Nothing here imports Airflow, so the sandbox starts in well under a second.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from typing import Any

from airflow_provider_fluents_tines.sandbox.state import (
    DEFAULT_FLUENTS_TOKEN,
    DEFAULT_TINES_TOKEN,
    Fault,
    RateLimit,
    SandboxState,
    default_seed,
)

__all__ = [
    "DEFAULT_FLUENTS_TOKEN",
    "DEFAULT_TINES_TOKEN",
    "Fault",
    "RateLimit",
    "SandboxServer",
    "SandboxState",
    "connection_env",
    "default_seed",
    "is_loopback",
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names a loopback interface: ``127.0.0.0/8``, ``::1`` or ``localhost``."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def connection_env(
    base_url: str,
    *,
    fluents_token: str = DEFAULT_FLUENTS_TOKEN,
    tines_token: str = DEFAULT_TINES_TOKEN,
    fluents_conn_id: str = "fluents_default",
    tines_conn_id: str = "tines_default",
    extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    """
    ``AIRFLOW_CONN_*`` variables pointing the two connections at a sandbox.

    :param extra: connection extras for both, e.g. ``{"requests_per_minute": 100_000}`` for a burst the
        sandbox (which does not rate-limit by default) should not see paced at Tines' 100 a minute.
    """
    fluents: dict[str, Any] = {"conn_type": "fluents", "host": base_url, "password": fluents_token}
    tines: dict[str, Any] = {"conn_type": "tines", "host": base_url, "password": tines_token}
    if extra:
        fluents["extra"] = tines["extra"] = dict(extra)
    return {
        f"AIRFLOW_CONN_{fluents_conn_id.upper()}": json.dumps(fluents),
        f"AIRFLOW_CONN_{tines_conn_id.upper()}": json.dumps(tines),
    }


def non_loopback_refusal(host: str, how: str) -> str:
    return (
        f"refusing to bind {host!r}: it is not a loopback interface (127.0.0.0/8, ::1, localhost). "
        "The sandbox accepts published default API keys and its admin API (/_sandbox/) has no "
        f"authentication, so anyone who can reach it can change it. Pass {how} to bind it anyway."
    )


class SandboxServer:
    """
    The sandbox served by uvicorn on a background thread.

    :param host: the interface to bind; loopback by default.
    :param port: the port; 0 picks a free one.
    :param state: the state to serve; a new one from ``state_kwargs`` (``seed``, tokens,
        ``visibility_lag``, ``rate_limit``, ``fluents_number_shape``) when None.
    :param allow_non_loopback: bind a ``host`` that is not loopback (``127.0.0.0/8``, ``::1``,
        ``localhost``); without it such a host raises ``ValueError`` here, before anything is bound.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state: SandboxState | None = None,
        *,
        allow_non_loopback: bool = False,
        **state_kwargs: Any,
    ):
        if not allow_non_loopback and not is_loopback(host):
            raise ValueError(non_loopback_refusal(host, "allow_non_loopback=True"))
        host = host.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        self.host = host
        self.port = port
        self.state = state or SandboxState(**state_kwargs)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def connection_env(self, **kwargs: Any) -> dict[str, str]:
        """``AIRFLOW_CONN_FLUENTS_DEFAULT`` and ``AIRFLOW_CONN_TINES_DEFAULT`` for this server."""
        tokens = {"fluents_token": self.state.fluents_token, "tines_token": self.state.tines_token}
        return connection_env(self.url, **{**tokens, **kwargs})

    def start(self, timeout: float = 10.0) -> SandboxServer:
        import uvicorn

        from airflow_provider_fluents_tines.sandbox.app import create_app

        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fluents-tines-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
