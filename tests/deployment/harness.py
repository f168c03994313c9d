"""
Helpers of the real-deployment tier: bounded waits, free ports, processes stopped by their pid,
small clients for Airflow's REST API and the sandbox's admin API, and the types the fixtures hand
to the tests.

Nothing here imports Airflow: the deployment's Airflow lives in its own virtual env and is only
ever reached through subprocesses and HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import requests

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class Budget:
    """A time budget shared by several waits, so the tier as a whole stays bounded."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def cap(self, seconds: float) -> float:
        """``seconds``, or less when the budget ends sooner."""
        return min(seconds, self.remaining())


def wait_for(predicate: Callable[[], T | None], *, timeout: float, interval: float, what: str) -> T:
    """Poll ``predicate`` until it returns a truthy value; raise ``TimeoutError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def free_port() -> int:
    """A TCP port free on loopback right now (there is a small race until the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a text file, or a note that it does not exist."""
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a process group; False when the group has no process left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # only zombies left, which the kernel reaps with their parent
        return False
    return True


class ManagedProcess:
    """
    A long-running server started in its own session (so its pid is also its process group id),
    its output in a log file, and stopped by that pid: SIGTERM to the group, a bounded wait, then
    SIGKILL to whatever of the group is left (Airflow's workers and supervisors included).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        pid_file: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.pid_file = pid_file
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.pid_file is not None:
            record_pid(self.pid_file, self.name, self.popen.pid)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        """Fail with the end of its log when the process has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} (pid {self.pid}) exited with {self.popen.returncode}; "
                f"end of {self.log_path}:\n{tail(self.log_path)}"
            )

    def terminate(self) -> None:
        """Ask the process group to exit (SIGTERM) without waiting."""
        if self.popen is not None:
            _signal_group(self.popen.pid, signal.SIGTERM)

    def stop(self, grace: float = 20.0) -> str:
        """SIGTERM the group, wait up to ``grace`` s, SIGKILL what is left; say whether that was needed."""
        if self.popen is None:
            return ""
        pgid = self.popen.pid
        forced = ""
        if _signal_group(pgid, signal.SIGTERM):
            # The leader may be gone while its children (task runners, workers) still shut down.
            with contextlib.suppress(TimeoutError):
                wait_for(
                    lambda: (
                        self.popen is not None and self.popen.poll() is not None and not _group_alive(pgid)
                    ),
                    timeout=grace,
                    interval=0.2,
                    what=f"{self.name}'s process group to exit",
                )
        if _group_alive(pgid):
            forced = f" (SIGKILL after {grace:.0f} s)"
            _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        return forced


def record_pid(pid_file: Path, name: str, pid: int) -> None:
    """Note a server's pid, so that ``.ci/run`` can stop it if this test session is killed before
    its teardown (the file goes away with the work dir after a normal teardown)."""
    with pid_file.open("a", encoding="utf-8") as pids:
        pids.write(f"{name} {pid}\n")


def _group_alive(pgid: int) -> bool:
    """Whether a process group still has a live (not zombie) member.

    Read from /proc where there is one: orphans whose parent died are reparented to PID 1, which
    in a container may never reap them, and a group of zombies still answers ``killpg(pgid, 0)``.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def run_bounded(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion within ``timeout`` s; on timeout kill its whole process group."""
    with subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate(timeout=10)
            raise TimeoutError(
                f"{' '.join(argv)} did not finish within {timeout:.0f} s; output:\n{output[-4000:]}"
            ) from None
    result = subprocess.CompletedProcess(list(argv), proc.returncode, output, None)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {result.returncode}:\n{output[-6000:]}")
    return result


class HttpClient:
    """A JSON client for one loopback server; errors carry the response body."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only: no proxy from the environment

    def request(self, method: str, path: str, *, expect: Sequence[int] = (200,), **kwargs: Any) -> Any:
        response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        if response.status_code not in expect:
            raise AssertionError(
                f"{method} {path} answered {response.status_code}, expected {list(expect)}: {response.text[:2000]}"
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text


class SandboxAdmin(HttpClient):
    """The sandbox's admin API under ``/_sandbox/``."""

    def reset(self) -> None:
        self.request("POST", "/_sandbox/reset", expect=(204,))

    def state(self) -> dict[str, Any]:
        return dict(self.request("GET", "/_sandbox/state"))

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return dict(self.request("POST", "/_sandbox/faults", json=spec, expect=(201,)))

    def clear_faults(self) -> None:
        self.request("DELETE", "/_sandbox/faults", expect=(204,))

    def configure(self, **config: Any) -> dict[str, Any]:
        return dict(self.request("PUT", "/_sandbox/config", json=config))

    def journal(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        params = {key: value for key, value in (("method", method), ("path", path)) if value}
        return list(self.request("GET", "/_sandbox/journal", params=params))


class AirflowApi(HttpClient):
    """Airflow 3's public REST API (``/api/v2``), authenticated as the simple auth manager's admin."""

    def login(self) -> None:
        # With [core] simple_auth_manager_all_admins, GET /auth/token hands out an admin token.
        token = self.request("GET", "/auth/token", expect=(200, 201))["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def health(self) -> dict[str, Any] | None:
        try:
            response = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return None
        return response.json() if response.status_code == 200 else None

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self.request("GET", "/api/v2/dags", params={"limit": 100})["dags"]}

    def create_connection(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", "/api/v2/connections", json=dict(payload), expect=(201,)))

    def connection(self, conn_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v2/connections/{quote(conn_id, safe='')}"))

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Unpause ``dag_id`` and trigger a run, as a user does in the UI; return the run id."""
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        run = self.request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": dict(conf or {})}
        )
        return str(run["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"))

    def wait_run(self, dag_id: str, run_id: str, *, timeout: float) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.run(dag_id, run_id)
            return run if run["state"] in TERMINAL_RUN_STATES else None

        return wait_for(finished, timeout=timeout, interval=2, what=f"run {run_id} of {dag_id} to finish")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run, mapped ones included (one per map index)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return list(self.request("GET", path, params={"limit": 1000})["task_instances"])

    def triggerer_job_ids(self) -> set[int]:
        jobs = self.request("GET", "/api/v2/jobs", params={"job_type": "TriggererJob", "limit": 100})["jobs"]
        return {int(job["id"]) for job in jobs if job["state"] == "running"}


def task_log_dir(logs_root: Path, ti: Mapping[str, Any]) -> Path:
    """The folder of a task instance's logs under Airflow's default ``log_filename_template``."""
    folder = logs_root / f"dag_id={ti['dag_id']}" / f"run_id={ti['dag_run_id']}" / f"task_id={ti['task_id']}"
    return folder / f"map_index={ti['map_index']}" if ti["map_index"] >= 0 else folder


def log_records(log_file: Path) -> list[dict[str, Any]]:
    """The records of a task or trigger log (one JSON object per line; other lines are skipped)."""
    records = []
    for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def trigger_events(log_file: Path) -> list[dict[str, Any]]:
    """The 'Trigger fired event' records of a trigger log."""
    return [record for record in log_records(log_file) if record.get("event") == "Trigger fired event"]


# ---- the tier's shared types -----------------------------------------------------------------------


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require(condition: object, reason: str) -> None:
    """Skip without a prerequisite, except in CI, where a missing prerequisite is a failure."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI=true and a prerequisite of the deployment tier is missing: {reason}")
    pytest.skip(f"deployment tier: {reason}")


@dataclass(frozen=True)
class Settings:
    airflow_version: str
    exclude_newer: str
    python: str
    work_root: Path | None
    home: Path | None
    keep_logs_in: Path | None
    keep_all: bool
    visibility_lag: float
    budget: float
    update_screenshots: bool
    chromium: str
    chromedriver: str


@dataclass
class Sandbox:
    url: str
    admin: SandboxAdmin
    process: ManagedProcess
    # Passed on the command line, so that a caller's FLUENTS_TINES_SANDBOX_*_TOKEN cannot change them.
    fluents_token: str = "sandbox-fluents-key"
    tines_token: str = "sandbox-tines-key"


@dataclass
class Deployment:
    """A running Airflow: its REST client, environment, folders and processes."""

    api: AirflowApi
    env: dict[str, str]
    bin: Path
    work: Path
    home: Path
    dags: Path
    logs_root: Path
    processes: dict[str, ManagedProcess]
    budget: Budget
    sandbox: Sandbox
    runs: list[tuple[str, str]] = field(default_factory=list)

    def airflow(
        self, *args: str, timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run the deployment's ``airflow`` CLI with its environment."""
        return run_bounded(
            [str(self.bin / "airflow"), *args], env=self.env, cwd=self.work, timeout=timeout, check=check
        )

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run_id = self.api.trigger(dag_id, conf)
        self.runs.append((dag_id, run_id))
        return run_id

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
        for process in self.processes.values():
            process.check_alive()
        return self.api.wait_run(dag_id, run_id, timeout=self.budget.cap(timeout))

    def wait_all_runs(self) -> None:
        """Wait until every run triggered so far has finished (before the sandbox is reset)."""
        for dag_id, run_id in list(self.runs):
            self.wait_run(dag_id, run_id)
