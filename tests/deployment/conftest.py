"""
Session fixtures of the real-deployment tier: the provider built as a wheel and installed (not
editable) with the Airflow under test into a fresh virtual env, a private PostgreSQL, the sandbox,
and Airflow's api-server, scheduler, dag-processor and triggerer as separate processes with the
LocalExecutor. Everything runs in subprocesses with its own environment: the in-process tests'
settings (``tests/conftest.py``) never reach it.

Settings (environment variables; all optional):

- ``FLUENTS_TINES_DEPLOY_AIRFLOW``: the Airflow version under test (default 3.3.2), resolved with
  ``uv pip install --exclude-newer`` one day after its release, a stand-in for its constraints file;
  ``FLUENTS_TINES_DEPLOY_EXCLUDE_NEWER`` overrides that date.
- ``FLUENTS_TINES_DEPLOY_PYTHON``: the interpreter of the virtual env (default: ``python3``).
- ``FLUENTS_TINES_DEPLOY_WORK_ROOT``: where the work dir is created (default: the temp dir); it must
  be traversable by the ``postgres`` user when the tests run as root.
- ``FLUENTS_TINES_DEPLOY_HOME``: the deployment's AIRFLOW_HOME (default: a temp dir, removed at the end).
- ``FLUENTS_TINES_DEPLOY_LOGS``: where the logs are kept when a test fails (default: a new temp dir).
- ``FLUENTS_TINES_DEPLOY_KEEP=1``: keep the whole work dir, pass or fail.
- ``FLUENTS_TINES_DEPLOY_LAG``: the sandbox's visibility lag in seconds (default 30). It must outlast
  the time from an update task's write to the next sensor's first poke, which reached 16 s on a
  loaded 2-core machine; a sensor that did not defer fails the tier.
- ``FLUENTS_TINES_DEPLOY_BUDGET``: seconds the DAG runs and the browser may take in all (default 600).
- ``FLUENTS_TINES_UPDATE_SCREENSHOTS=1``: copy the connection form screenshots into ``docs/images/``.
- ``FLUENTS_TINES_CHROMIUM`` / ``FLUENTS_TINES_CHROMEDRIVER``: browser paths (default Debian's).

A missing prerequisite (PostgreSQL, Chromium, uv) skips with the reason, or fails when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pwd
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    HERE,
    ROOT,
    AirflowApi,
    Budget,
    Deployment,
    ManagedProcess,
    Sandbox,
    SandboxAdmin,
    Settings,
    env_flag,
    free_port,
    record_pid,
    require,
    run_bounded,
    tail,
    wait_for,
)

# Release dates of the Airflow versions this project is tested against (PyPI upload dates); any
# other version's date is looked up once on PyPI.
AIRFLOW_RELEASE_DATES = {
    "3.0.0": "2025-04-22",
    "3.1.0": "2025-09-25",
    "3.2.0": "2026-04-07",
    "3.3.0": "2026-07-06",
    "3.3.2": "2026-09-17",
}
EXPECTED_DAGS = {
    "fluents_tines_rollout",
    "tines_maintenance_window",
    "fluents_action_update",
    "tines_escalation_watch",
    "deployment_ui_connection",
}
# Top-level folders of the checkout that are not part of the distribution (or are local state).
_NOT_BUILT = {
    ".git",
    ".venv",
    ".matrix",
    ".airflow-home",
    ".mypy_cache",
    ".ruff_cache",
    "bench",
    "build",
    "dist",
    "docs",
    "tests",
    "example_dags",
    "scripts",
}
# What is not worth keeping as a log when a test fails.
_NOT_KEPT = shutil.ignore_patterns("venv", "src", "dist", "data", "chrome-profile", "*.sock*")

_failures: list[str] = []
_kept_logs: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Note the tier's failures: its work dir's teardown keeps the logs when there were any."""
    report = yield
    if report.failed and item.get_closest_marker("deployment") is not None:
        _failures.append(f"{item.nodeid} ({report.when})")
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for path in _kept_logs:
        terminalreporter.write_line(f"deployment tier: logs of the failed run kept in {path}", red=True)


def _release_date(version: str) -> str:
    if version in AIRFLOW_RELEASE_DATES:
        return AIRFLOW_RELEASE_DATES[version]
    with urllib.request.urlopen(f"https://pypi.org/pypi/apache-airflow/{version}/json", timeout=30) as page:
        files = json.load(page)["urls"]
    return min(file["upload_time_iso_8601"] for file in files)[:10]


@pytest.fixture(scope="session")
def settings() -> Settings:
    version = os.environ.get("FLUENTS_TINES_DEPLOY_AIRFLOW", "3.3.2")
    exclude_newer = (
        os.environ.get("FLUENTS_TINES_DEPLOY_EXCLUDE_NEWER")
        or (dt.date.fromisoformat(_release_date(version)) + dt.timedelta(days=1)).isoformat()
    )
    home = os.environ.get("FLUENTS_TINES_DEPLOY_HOME")
    logs = os.environ.get("FLUENTS_TINES_DEPLOY_LOGS")
    return Settings(
        airflow_version=version,
        exclude_newer=exclude_newer,
        python=os.environ.get("FLUENTS_TINES_DEPLOY_PYTHON") or shutil.which("python3") or sys.executable,
        work_root=Path(os.environ["FLUENTS_TINES_DEPLOY_WORK_ROOT"]).resolve()
        if os.environ.get("FLUENTS_TINES_DEPLOY_WORK_ROOT")
        else None,
        home=Path(home).resolve() if home else None,
        keep_logs_in=Path(logs).resolve() if logs else None,
        keep_all=env_flag("FLUENTS_TINES_DEPLOY_KEEP"),
        visibility_lag=float(os.environ.get("FLUENTS_TINES_DEPLOY_LAG", "30")),
        budget=float(os.environ.get("FLUENTS_TINES_DEPLOY_BUDGET", "600")),
        update_screenshots=env_flag("FLUENTS_TINES_UPDATE_SCREENSHOTS"),
        chromium=os.environ.get("FLUENTS_TINES_CHROMIUM", "/usr/bin/chromium"),
        chromedriver=os.environ.get("FLUENTS_TINES_CHROMEDRIVER", "/usr/bin/chromedriver"),
    )


def _keep_logs(work: Path, settings: Settings) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = settings.keep_logs_in or Path(tempfile.gettempdir()) / f"fluents-tines-deploy-logs-{stamp}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(work, target / "work", ignore=_NOT_KEPT, dirs_exist_ok=True, symlinks=True)
    if settings.home is not None and (settings.home / "logs").is_dir():
        shutil.copytree(settings.home / "logs", target / "airflow-home-logs", dirs_exist_ok=True)
    return target


@pytest.fixture(scope="session")
def work_dir(settings: Settings) -> Iterator[Path]:
    """One temp dir for everything the tier creates; logs are kept elsewhere when a test failed."""
    work = Path(tempfile.mkdtemp(prefix="fluents-tines-deploy-", dir=settings.work_root))
    # Traversable (not listable) by others: PostgreSQL runs as its own user inside it.
    work.chmod(0o711)
    (work / "logs").mkdir()
    yield work
    if _failures:
        kept = _keep_logs(work, settings)
        _kept_logs.append(kept)  # printed in the terminal summary
    if not settings.keep_all:
        shutil.rmtree(work, ignore_errors=True)


# ---- the provider, installed as users install it -------------------------------------------------


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    python3 = shutil.which("python3") or sys.executable
    probe = run_bounded([python3, "-m", "uv", "--version"], timeout=60, check=False)
    require(probe.returncode == 0, "uv is not installed (pip install uv)")
    return [python3, "-m", "uv"]


def _ignore_for_build(folder: str, names: list[str]) -> set[str]:
    ignored = {name for name in names if name == "__pycache__" or name.endswith(".egg-info")}
    if Path(folder) == ROOT:
        ignored |= _NOT_BUILT.intersection(names)
    return ignored


@pytest.fixture(scope="session")
def provider_wheel(work_dir: Path) -> Path:
    """The provider built as a wheel from a copy of the working tree (setuptools writes build
    files into the tree it builds, and other people may be editing this one)."""
    source = work_dir / "src"
    shutil.copytree(ROOT, source, ignore=_ignore_for_build)
    run_bounded([*_uv(), "build", "--wheel", "--out-dir", str(work_dir / "dist"), str(source)], timeout=300)
    wheels = sorted((work_dir / "dist").glob("airflow_provider_fluents_tines-*.whl"))
    assert len(wheels) == 1, f"expected one wheel, built {wheels}"
    return wheels[0]


@pytest.fixture(scope="session")
def venv_bin(work_dir: Path, provider_wheel: Path, settings: Settings) -> Path:
    """A fresh virtual env holding the Airflow under test and the wheel, resolved in one call.

    The postgres extra brings psycopg2 (the metadata DB driver) and asyncpg (Airflow derives an
    async engine from the DB URL); selenium drives the browser check from this env too.
    """
    venv = work_dir / "venv"
    uv = _uv()
    run_bounded([*uv, "venv", "--quiet", "--python", settings.python, str(venv)], timeout=120)
    run_bounded(
        [
            *uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv / "bin" / "python"),
            "--exclude-newer",
            settings.exclude_newer,
            f"apache-airflow[postgres]=={settings.airflow_version}",
            str(provider_wheel),
            "selenium",
        ],
        timeout=900,
    )
    return venv / "bin"


# ---- PostgreSQL ----------------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    given = os.environ.get("FLUENTS_TINES_DEPLOY_PG_BIN")
    if given:
        return Path(given)
    on_path = shutil.which("pg_ctl")
    if on_path:  # often a symlink into the versioned folder that also holds initdb and createdb
        return Path(on_path).resolve().parent
    # Debian keeps the server binaries out of PATH, one folder per major version.
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url(work_dir: Path) -> Iterator[str]:
    """A private PostgreSQL on a free port, stopped (pg_ctl stop -m fast) at the end."""
    pg_bin = _postgres_bin()
    require(
        pg_bin and all((pg_bin / tool).exists() for tool in ("initdb", "pg_ctl", "createdb")),
        "PostgreSQL server binaries not found (apt-get install postgresql)",
    )
    assert pg_bin is not None
    as_postgres: list[str] = []
    folder = work_dir / "postgres"
    folder.mkdir()
    if os.geteuid() == 0:  # postgres refuses to run as root
        require(shutil.which("runuser"), "runuser not found")
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            account = None
        require(account, "no 'postgres' user to run PostgreSQL as")
        assert account is not None
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    run_bounded(
        [
            *as_postgres,
            str(pg_bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "airflow",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        timeout=120,
    )
    # Durability off: this database lives for one test session.
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=300 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = [*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data)]
    try:
        run_bounded(
            [*pg_ctl, "-l", str(folder / "postgres.log"), "-w", "-t", "60", "-o", options, "start"],
            timeout=90,
        )
        record_pid(work_dir / "pids", "postgres", int((data / "postmaster.pid").read_text().split()[0]))
        run_bounded(
            [
                *as_postgres,
                str(pg_bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "airflow",
                "airflow",
            ],
            timeout=60,
        )
        yield f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"
    finally:
        stopped = run_bounded([*pg_ctl, "stop", "-m", "fast", "-w", "-t", "30"], timeout=60, check=False)
        if stopped.returncode != 0 and (data / "postmaster.pid").exists():
            # pg_ctl gave up: kill the postmaster by the pid it recorded.
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)


# ---- the sandbox and Airflow ---------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """The caller's environment without any Airflow setting (the in-process tests set some)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AIRFLOW") and key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env["NO_PROXY"] = env["no_proxy"] = ",".join(
        filter(None, ["127.0.0.1", "localhost", os.environ.get("NO_PROXY", "")])
    )
    return env


@pytest.fixture(scope="session")
def sandbox(work_dir: Path, venv_bin: Path, settings: Settings) -> Iterator[Sandbox]:
    """The sandbox from the installed wheel, with a visibility lag so that every sensor's first
    poke on the worker misses and the sensor defers to the triggerer."""
    port = free_port()
    tokens = Sandbox.fluents_token, Sandbox.tines_token
    argv = [
        str(venv_bin / "python"),
        "-m",
        "airflow_provider_fluents_tines.sandbox",
        "--port",
        str(port),
        "--fluents-token",
        tokens[0],
        "--tines-token",
        tokens[1],
        "--visibility-lag",
        str(settings.visibility_lag),
    ]
    process = ManagedProcess(
        "sandbox",
        argv,
        env=_clean_env(),
        cwd=work_dir,
        log_path=work_dir / "logs" / "sandbox.log",
        pid_file=work_dir / "pids",
    ).start()
    admin = SandboxAdmin(f"http://127.0.0.1:{port}")
    try:

        def ready() -> bool:
            process.check_alive()
            try:
                admin.request("GET", "/_sandbox/config")
            except Exception:
                return False
            return True

        wait_for(ready, timeout=60, interval=0.3, what="the sandbox to answer")
        yield Sandbox(url=admin.base_url, admin=admin, process=process)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def airflow(
    work_dir: Path, postgres_url: str, venv_bin: Path, sandbox: Sandbox, settings: Settings
) -> Iterator[Deployment]:
    """Airflow's four services as separate processes, LocalExecutor on PostgreSQL (started before
    the virtual env is built, so that a machine without PostgreSQL skips at once)."""
    from cryptography.fernet import Fernet  # an Airflow dependency, also in the dev env

    home = settings.home or work_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    dags = work_dir / "dags"
    dags.mkdir()
    for source in (ROOT / "example_dags", HERE / "dags"):
        for dag_file in source.glob("*.py"):
            shutil.copy(dag_file, dags / dag_file.name)
    api_port = free_port()
    base_url = f"http://127.0.0.1:{api_port}"
    env = _clean_env()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_url,
            # Shared by every process: the same keys encrypt connections and sign task tokens.
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            # The example DAGs leave `deferrable` to this setting, as Airflow recommends.
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            # Scheduling stays on (asset-triggered runs of tines_escalation_watch need it): an
            # unpaused tines_maintenance_window starts its latest interval at once, a run that
            # changes nothing (no action ids) and holds the DAG's one active-run slot briefly.
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # Free ports, not 8793/8794: another Airflow on this machine may hold those.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # Read by the example DAGs at parse time (dag-processor, scheduler and workers).
            "FLUENTS_TINES_POKE_INTERVAL": "2",
            "FLUENTS_TINES_WATCH_INTERVAL": "2",
            # The example rollout's rollback must outlast the sandbox's visibility lag: it trusts a
            # read only that long after a write, and watches for late writes as long.
            "FLUENTS_TINES_VISIBILITY_LAG": str(settings.visibility_lag + 2),
            "FLUENTS_TINES_SETTLE_SECONDS": str(settings.visibility_lag + 2),
        }
    )
    logs = work_dir / "logs"
    migrate = run_bounded(
        [str(venv_bin / "airflow"), "db", "migrate"], env=env, cwd=work_dir, timeout=300, check=False
    )
    (logs / "db-migrate.log").write_text(migrate.stdout, encoding="utf-8")
    assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout[-4000:]}"

    commands = {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(api_port)],
        "scheduler": ["scheduler"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer"],
    }
    processes = {
        name: ManagedProcess(
            name,
            [str(venv_bin / "airflow"), *args],
            env=env,
            cwd=work_dir,
            log_path=logs / f"{name}.log",
            pid_file=work_dir / "pids",
        )
        for name, args in commands.items()
    }
    api = AirflowApi(base_url)
    try:
        for process in processes.values():
            process.start()

        def healthy() -> bool:
            for process in processes.values():
                process.check_alive()
            health = api.health()
            return health is not None and all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        wait_for(healthy, timeout=240, interval=1, what="the api-server to report every service healthy")
        api.login()
        wait_for(
            lambda: api.dag_ids() >= EXPECTED_DAGS,
            timeout=180,
            interval=2,
            what=f"the dag-processor to parse {sorted(EXPECTED_DAGS)}; see {logs / 'dag-processor.log'}",
        )
        yield Deployment(
            api=api,
            env=env,
            bin=venv_bin,
            work=work_dir,
            home=home,
            dags=dags,
            logs_root=home / "logs",
            processes=processes,
            budget=Budget(settings.budget),
            sandbox=sandbox,
        )
    except Exception as err:
        report = "\n".join(f"--- {p.log_path}\n{tail(p.log_path, 30)}" for p in processes.values())
        raise RuntimeError(f"the Airflow deployment did not come up: {err}\n{report}") from err
    finally:
        # All at once (each may take seconds to shut down gracefully), then each by its pid.
        started = time.monotonic()
        for process in processes.values():
            process.terminate()
        with (logs / "teardown.log").open("a", encoding="utf-8") as record:
            for name in ("scheduler", "triggerer", "dag-processor", "api-server"):
                forced = processes[name].stop()
                record.write(f"{name} stopped after {time.monotonic() - started:.1f} s{forced}\n")
