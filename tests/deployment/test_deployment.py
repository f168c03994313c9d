"""
The provider in a real Airflow deployment, used the way a new user uses it (issue #10).

The fixtures (``conftest.py``) install the provider's wheel with the Airflow under test into a
fresh virtual env and start api-server, scheduler, dag-processor and triggerer as separate
processes (LocalExecutor on PostgreSQL) plus the sandbox. The tests then:

- create ``fluents_default`` and ``tines_default`` through the REST API with the payload Airflow's
  connection form sends (every declared extra null) and run ``airflow connections test`` on both;
- drive the connection form in headless Chromium: labels, placeholders, hidden and extra fields of
  both types, and a Tines connection saved through it that a task then uses;
- trigger each example DAG through the REST API and check every run's and task's final state,
  that every sensor was completed by the triggerer (its trigger log records the fired event), and
  that the rollout's rollback after a persistent Tines write fault restores the sandbox's state.

Run it alone with ``.venv/bin/python -m pytest -m deployment`` (about five minutes on two cores).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from airflow_provider_fluents_tines.get_provider_info import get_provider_info

from .harness import (
    HERE,
    ROOT,
    Deployment,
    Settings,
    log_records,
    require,
    run_bounded,
    task_log_dir,
    trigger_events,
    wait_for,
)

pytestmark = pytest.mark.deployment

CONNECTION_TYPES = {ct["connection-type"]: ct for ct in get_provider_info()["connection-types"]}
DECLARED_EXTRAS = {name: sorted(ct["conn-fields"]) for name, ct in CONNECTION_TYPES.items()}
STANDARD_FIELDS = ("host", "login", "schema", "port", "password")
# The API moves `updated_at` on every write, so a restore cannot bring it back; every other field,
# derived ones included (slug, inbound_agent_name, sources/receivers), must come back as it was.
SERVER_MANAGED_FIELDS = frozenset({"updated_at"})

ROLLOUT_FORWARD = (
    "desired_state",
    "rollout.plan",
    "rollout.approve",
    "rollout.apply_wave_1",
    "rollout.verify_wave_1",
    "rollout.apply_wave_2",
    "rollout.verify_wave_2",
    "rollout.apply_wave_3",
    "rollout.verify_wave_3",
)
ROLLOUT_NUMBERS = ("+14155550101", "+14155550102", "+14155550103")
MAINTENANCE_ACTIONS = (90003, 90006)
TRANSFER_ACTION = "3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11"


def ui_form_payload(conn_id: str, conn_type: str, host: str, password: str) -> dict[str, Any]:
    """What Airflow 3.3's connection form POSTs when only id, type, host and API key are filled:
    every declared extra field is present, as null (read from the provider, so this follows it)."""
    return {
        "connection_id": conn_id,
        "conn_type": conn_type,
        "host": host,
        "password": password,
        "extra": json.dumps(dict.fromkeys(DECLARED_EXTRAS[conn_type])),
    }


# ---- run checks ----------------------------------------------------------------------------------


def task_errors(log: Path, limit: int = 3) -> list[str]:
    """The errors a task's log records (``ExcType: message``, or the event), most recent last."""
    if not log.exists():
        return [f"(no log at {log})"]
    errors = []
    for record in log_records(log):
        if record.get("level") not in ("error", "critical"):
            continue
        details = record.get("error_detail") or []
        errors += [f"{d['exc_type']}: {d['exc_value']}" for d in details] or [str(record.get("event"))]
    return errors[-limit:]


def describe(deployment: Deployment, tis: list[dict[str, Any]]) -> str:
    """A table of a run's task instances, with the errors logged by each one that failed."""
    lines = []
    for ti in sorted(tis, key=lambda t: (t["task_id"], t["map_index"])):
        lines.append(f"  {ti['task_id']}[{ti['map_index']}] {ti['state']} (try {ti['try_number']})")
        if ti["state"] == "failed" and ti["try_number"]:
            log = task_log_dir(deployment.logs_root, ti) / f"attempt={ti['try_number']}.log"
            lines += [f"      {error}" for error in task_errors(log)]
    return "\n".join(lines)


def assert_task_states(
    deployment: Deployment,
    tis: list[dict[str, Any]],
    expected: Mapping[str, str],
    expanded: Mapping[str, int],
) -> None:
    """Every task of the run is in ``expected`` and every one of its instances in that state;
    each task in ``expanded`` ran once per map index."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ti in tis:
        by_task[ti["task_id"]].append(ti)
    table = describe(deployment, tis)
    assert set(by_task) == set(expected), f"unexpected tasks:\n{table}"
    wrong = [
        f"{ti['task_id']}[{ti['map_index']}] is {ti['state']}, expected {expected[ti['task_id']]}"
        for ti in tis
        if ti["state"] != expected[ti["task_id"]]
    ]
    assert not wrong, "\n".join(wrong) + f"\n{table}"
    for task_id, count in expanded.items():
        indexes = sorted(ti["map_index"] for ti in by_task[task_id])
        assert indexes == list(range(count)), f"{task_id} map indexes {indexes}\n{table}"


def assert_sensors_deferred(deployment: Deployment, tis: list[dict[str, Any]]) -> int:
    """Each sensor that succeeded was completed by the triggerer: the try has a trigger log,
    named after the running triggerer's job id, recording the success event fired for this task
    instance. Returns the number of sensors checked."""
    triggerer_jobs = deployment.api.triggerer_job_ids()
    assert triggerer_jobs, "no running triggerer job"
    checked = 0
    for ti in tis:
        if not str(ti["operator"]).endswith("Sensor") or ti["state"] != "success":
            continue
        checked += 1
        name = f"{ti['task_id']}[{ti['map_index']}]"
        folder = task_log_dir(deployment.logs_root, ti)
        logs = sorted(folder.glob(f"attempt={ti['try_number']}.log.trigger.*.log"))
        assert logs, (
            f"{name} has no trigger log in {folder}: it finished without deferring (its first poke "
            f"on the worker already matched?). The sandbox's visibility lag "
            f"(FLUENTS_TINES_DEPLOY_LAG) must outlast the time from a write to the next sensor's poke."
        )
        fired = []
        for log in logs:
            job_id = int(log.name.rsplit(".", 2)[-2])
            assert job_id in triggerer_jobs, f"{log.name}: job {job_id} is not our triggerer {triggerer_jobs}"
            fired += [e for e in trigger_events(log) if e.get("ti_id") == ti["id"]]
        assert len(fired) == 1, f"{name}: expected one fired event in {logs}, found {fired}"
        assert re.search(r"'status': 'success'", fired[0]["result"]), f"{name}: {fired[0]['result']}"
    return checked


def run_and_check(
    deployment: Deployment,
    dag_id: str,
    run_id: str,
    *,
    run_state: str,
    expected: Mapping[str, str],
    expanded: Mapping[str, int],
    sensors: int,
) -> list[dict[str, Any]]:
    run = deployment.wait_run(dag_id, run_id)
    tis = deployment.api.task_instances(dag_id, run_id)
    assert run["state"] == run_state, f"{dag_id} run {run_id} is {run['state']}:\n{describe(deployment, tis)}"
    assert_task_states(deployment, tis, expected, expanded)
    assert assert_sensors_deferred(deployment, tis) == sensors
    return tis


def strip_server_managed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_server_managed(v) for k, v in value.items() if k not in SERVER_MANAGED_FIELDS}
    if isinstance(value, list):
        return [strip_server_managed(v) for v in value]
    return value


def writes_to_number(journal: list[dict[str, Any]], number: str) -> int:
    return sum(parse_qs(entry["query"]).get("phone_number") == [number] for entry in journal)


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ui_payload_connections(airflow: Deployment) -> dict[str, dict[str, Any]]:
    """fluents_default and tines_default, created through the REST API as the UI form creates them."""
    sandbox = airflow.sandbox
    created = {}
    for conn_id, conn_type, token in (
        ("fluents_default", "fluents", sandbox.fluents_token),
        ("tines_default", "tines", sandbox.tines_token),
    ):
        created[conn_id] = airflow.api.create_connection(
            ui_form_payload(conn_id, conn_type, sandbox.url, token)
        )
    return created


@pytest.fixture(scope="session")
def example_runs(airflow: Deployment, ui_payload_connections: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The three example DAGs triggered at once: they touch disjoint sandbox objects, and their
    runs overlapping keeps the tier within a few minutes."""
    runs = {
        "rollout": ("fluents_tines_rollout", {}),
        # The DAG's default ids will be empty (an unpause must touch no real object): pass them.
        "maintenance": ("tines_maintenance_window", {"action_ids": list(MAINTENANCE_ACTIONS)}),
        "action_update": ("fluents_action_update", {}),
    }
    return {key: (dag_id, airflow.trigger(dag_id, conf)) for key, (dag_id, conf) in runs.items()}


@pytest.fixture(scope="session")
def connection_form(
    airflow: Deployment, settings: Settings, example_runs: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """What the connection form showed and saved in headless Chromium (``browser_form.py``, run in
    the deployment's env). Requests ``example_runs`` so the DAG runs proceed meanwhile."""
    require(Path(settings.chromium).exists(), f"{settings.chromium} not found (apt-get install chromium)")
    require(
        Path(settings.chromedriver).exists(),
        f"{settings.chromedriver} not found (apt-get install chromium-driver)",
    )
    out = airflow.work / "browser"
    spec = {
        "base_url": airflow.api.base_url,
        "chromium": settings.chromium,
        "chromedriver": settings.chromedriver,
        "out_dir": str(out),
        "timeout": 60,
        "types": [(name, ct["hook-name"], f"{name}_default") for name, ct in CONNECTION_TYPES.items()],
        "probe_extra": DECLARED_EXTRAS["tines"][0],
        "save": {
            "conn_id": "tines_ui",
            "hook_name": CONNECTION_TYPES["tines"]["hook-name"],
            "host": airflow.sandbox.url,
            "password": airflow.sandbox.tines_token,
        },
    }
    out.mkdir()
    (out / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    result = run_bounded(
        [str(airflow.bin / "python"), str(HERE / "browser_form.py"), str(out / "spec.json")],
        env={k: v for k, v in airflow.env.items() if not k.startswith("AIRFLOW")},
        cwd=airflow.work,
        timeout=airflow.budget.cap(300),
        check=False,
    )
    (airflow.work / "logs" / "browser.log").write_text(result.stdout, encoding="utf-8")
    report_file = out / "report.json"
    assert report_file.exists(), f"the browser script wrote no report:\n{result.stdout[-4000:]}"
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert result.returncode == 0 and not report["error"], (
        f"the browser check failed (screenshot {out / 'failure.png'}):\n{report['error']}\n{result.stdout[-3000:]}"
    )
    return dict(report)


# ---- tests ---------------------------------------------------------------------------------------


def test_provider_is_installed_from_the_wheel(airflow: Deployment, settings: Settings) -> None:
    probe = run_bounded(
        [
            str(airflow.bin / "python"),
            "-c",
            "import json, airflow, airflow_provider_fluents_tines as p; from importlib.metadata import distribution;"
            "d = distribution('airflow-provider-fluents-tines');"
            "print(json.dumps({'airflow': airflow.__version__, 'file': p.__file__,"
            " 'direct_url': json.loads(d.read_text('direct_url.json') or '{}')}))",
        ],
        env=airflow.env,
        cwd=airflow.work,
        timeout=120,
    )
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["airflow"] == settings.airflow_version
    assert found["file"].startswith(str(airflow.bin.parent)), found["file"]
    assert found["direct_url"]["url"].endswith(".whl"), found["direct_url"]
    assert not found["direct_url"].get("dir_info", {}).get("editable"), found["direct_url"]


@pytest.mark.parametrize("conn_id, conn_type", [("fluents_default", "fluents"), ("tines_default", "tines")])
def test_ui_form_connection_passes_connections_test(
    airflow: Deployment, ui_payload_connections: dict[str, dict[str, Any]], conn_id: str, conn_type: str
) -> None:
    stored = airflow.api.connection(conn_id)
    assert stored["conn_type"] == conn_type
    assert json.loads(stored["extra"]) == dict.fromkeys(DECLARED_EXTRAS[conn_type])
    result = airflow.airflow("connections", "test", conn_id, timeout=airflow.budget.cap(120))
    assert result.returncode == 0 and "Connection success!" in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize("conn_type", sorted(CONNECTION_TYPES))
def test_connection_form_shows_the_declared_fields(
    connection_form: dict[str, Any], settings: Settings, conn_type: str
) -> None:
    declared = CONNECTION_TYPES[conn_type]
    behaviour = declared["ui-field-behaviour"]
    form = connection_form["forms"][conn_type]
    standard = {field["name"]: field for field in form["standard"]}

    for name in ("host", "password"):
        assert standard[name]["label"] == behaviour["relabeling"][name], standard[name]
        assert standard[name]["placeholder"] == behaviour["placeholders"][name], standard[name]
    assert standard["password"]["type"] == "password"
    hidden = [name for name in STANDARD_FIELDS if name in behaviour["hidden-fields"]]
    assert hidden == ["login", "schema", "port"]
    assert not [name for name in hidden if name in standard], f"shown although hidden: {sorted(standard)}"

    extra = {field["name"].removeprefix("element_"): field for field in form["extra"]}
    assert sorted(extra) == DECLARED_EXTRAS[conn_type]
    for name, spec in declared["conn-fields"].items():
        assert extra[name]["label"] == spec["label"], extra[name]
        assert extra[name]["help"] == spec["description"], extra[name]
    assert extra["allow_insecure_http"]["type"] == "checkbox"

    for screenshot in map(Path, form["screenshots"]):
        assert screenshot.stat().st_size > 10_000, f"{screenshot} looks empty"
        if settings.update_screenshots:
            shutil.copy(screenshot, ROOT / "docs" / "images" / screenshot.name)


def test_form_saved_connection_runs_a_task(airflow: Deployment, connection_form: dict[str, Any]) -> None:
    assert connection_form["saved"] == "tines_ui"
    saved = airflow.api.connection("tines_ui")
    (airflow.work / "browser" / "saved-connection.json").write_text(
        json.dumps(saved, indent=2), encoding="utf-8"
    )
    assert (saved["conn_type"], saved["host"]) == ("tines", airflow.sandbox.url)
    # The form stores every extra field the user did not touch as null (Airflow 3.3.2): exactly the
    # payload the REST-made fluents_default/tines_default above copy, which this keeps honest.
    emulated = ui_form_payload("tines_ui", "tines", airflow.sandbox.url, airflow.sandbox.tines_token)
    assert json.loads(saved["extra"] or "{}") == json.loads(emulated["extra"]), (
        f"the form saved extra={saved['extra']!r}; make ui_form_payload() send what the form sends"
    )

    run_id = airflow.trigger("deployment_ui_connection")
    run_and_check(
        airflow,
        "deployment_ui_connection",
        run_id,
        run_state="success",
        expected={"enable_summary": "success"},
        expanded={},
        sensors=0,
    )
    writes = airflow.sandbox.admin.journal(method="PUT", path="/api/v1/actions/90007")
    assert [w["headers"].get("authorization") for w in writes] == ["Bearer ***"], writes
    assert writes[0]["body"] == {"disabled": False}
    assert airflow.sandbox.admin.state()["tines"]["actions"]["90007"]["disabled"] is False


def test_rollout_succeeds(airflow: Deployment, example_runs: dict[str, tuple[str, str]]) -> None:
    dag_id, run_id = example_runs["rollout"]
    expected = dict.fromkeys((*ROLLOUT_FORWARD, "rollout.result"), "success")
    expected["rollout.rollback"] = "skipped"
    run_and_check(airflow, dag_id, run_id, run_state="success", expected=expected, expanded={}, sensors=3)
    state = airflow.sandbox.admin.state()
    for number in ROLLOUT_NUMBERS:
        assert state["fluents"]["numbers"][number]["inbound_agent"] == "agt_front_desk_v2"
    escalation = state["tines"]["actions"]["90005"]
    assert escalation["disabled"] is False
    assert escalation["options"]["subject"] == "Front Desk v2: high severity phishing report"


def test_maintenance_window_succeeds(airflow: Deployment, example_runs: dict[str, tuple[str, str]]) -> None:
    dag_id, run_id = example_runs["maintenance"]
    expected = dict.fromkeys(
        ("actions_to_pause", "disable", "wait_disabled", "maintenance", "reenable", "verify_enabled"),
        "success",
    )
    expected["maintenance_failed"] = "skipped"
    mapped = ("disable", "wait_disabled", "reenable", "verify_enabled")
    run_and_check(
        airflow,
        dag_id,
        run_id,
        run_state="success",
        expected=expected,
        expanded=dict.fromkeys(mapped, len(MAINTENANCE_ACTIONS)),
        sensors=2 * len(MAINTENANCE_ACTIONS),
    )
    state = airflow.sandbox.admin.state()
    for action_id in MAINTENANCE_ACTIONS:
        writes = airflow.sandbox.admin.journal(method="PUT", path=f"/api/v1/actions/{action_id}")
        assert [w["body"] for w in writes] == [{"disabled": True}, {"disabled": False}]
        assert state["tines"]["actions"][str(action_id)]["disabled"] is False


def test_action_update_succeeds(airflow: Deployment, example_runs: dict[str, tuple[str, str]]) -> None:
    dag_id, run_id = example_runs["action_update"]
    run_and_check(
        airflow,
        dag_id,
        run_id,
        run_state="success",
        expected={"update_transfer": "success", "wait_transfer": "success"},
        expanded={},
        sensors=1,
    )
    action = airflow.sandbox.admin.state()["fluents"]["actions"][TRANSFER_ACTION]
    assert action["config"]["phone_number"] == "+14155550177"


def test_rollout_rolls_back_after_a_persistent_tines_write_fault(
    airflow: Deployment, ui_payload_connections: dict[str, Any]
) -> None:
    sandbox = airflow.sandbox.admin
    airflow.wait_all_runs()  # the other runs write to the sandbox too; the reset must follow them
    sandbox.reset()
    sandbox.add_fault(method="PUT", path="/api/v1/actions/90005", status=422, count=1000)
    before = sandbox.state()

    run_id = airflow.trigger("fluents_tines_rollout")
    expected = dict.fromkeys(ROLLOUT_FORWARD[:7], "success")
    expected |= {"rollout.apply_wave_3": "failed", "rollout.verify_wave_3": "upstream_failed"}
    expected |= {"rollout.rollback": "success", "rollout.result": "failed"}
    run_and_check(
        airflow,
        "fluents_tines_rollout",
        run_id,
        run_state="failed",
        expected=expected,
        expanded={},
        sensors=2,
    )
    after = sandbox.state()
    sandbox.clear_faults()

    # The run did change every number and did try the Tines write, so the equality below is earned.
    assert sandbox.journal(method="PUT", path="/api/v1/actions/90005"), "apply_wave_3 never wrote"
    number_writes = sandbox.journal(method="POST", path="/v1/numbers/update")
    for number in ROLLOUT_NUMBERS:
        assert writes_to_number(number_writes, number) == 2, f"{number}: expected a write and its restore"
    assert strip_server_managed(after) == strip_server_managed(before)


def test_sensor_timeouts_in_every_mode_are_measured(
    airflow: Deployment, ui_payload_connections: dict[str, Any]
) -> None:
    """
    How far past its timeout a sensor ends, per mode, with a real scheduler, worker and triggerer:
    from the start of ``execute`` in the task's log (where a sensor's clock starts; the worker's
    start-up comes before it) to the task's failure. Poke and deferrable: within one poke interval
    plus one request deadline (issue #11), deferrable plus the event's trip back to a worker;
    reschedule adds the scheduler's latency for each reschedule. The README's figures come from here.
    """
    timeout, poke_interval = 12, 3  # as in dags/deployment_sensor_timeouts.py
    run_id = airflow.trigger("deployment_sensor_timeouts")
    run = airflow.wait_run("deployment_sensor_timeouts", run_id, timeout=240)
    tis = {ti["task_id"]: ti for ti in airflow.api.task_instances("deployment_sensor_timeouts", run_id)}
    assert run["state"] == "failed", describe(airflow, list(tis.values()))
    overshoot = {}
    for mode in ("poke", "reschedule", "deferrable"):
        ti = tis[f"times_out_{mode}"]
        assert ti["state"] == "failed", describe(airflow, [ti])
        started, failed = _execute_start_and_failure(task_log_dir(airflow.logs_root, ti) / "attempt=1.log")
        overshoot[mode] = round((failed - started).total_seconds() - timeout, 1)
    (airflow.work / "sensor-timeouts.json").write_text(json.dumps(overshoot))
    print(f"seconds past a {timeout} s timeout (poke interval {poke_interval} s): {overshoot}")
    # The request deadline never comes into play here (every read answers at once).
    assert 0 <= overshoot["poke"] < poke_interval + 2, overshoot
    assert 0 <= overshoot["deferrable"] < poke_interval + 15, overshoot
    assert 0 <= overshoot["reschedule"] < poke_interval + 60, overshoot


def _execute_start_and_failure(log_file: Path) -> tuple[datetime, datetime]:
    """The first start of ``execute`` (the end of the first pre-execute group) and the last failure."""
    records = [
        (datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")), record.get("event"))
        for record in log_records(log_file)
        if "timestamp" in record
    ]
    pre = next(i for i, (_, event) in enumerate(records) if event == "::group::Pre Execute")
    started = next(moment for moment, event in records[pre:] if event == "::endgroup::")
    failed = [moment for moment, event in records if event == "Task failed with exception"][-1]
    return started, failed


def test_escalation_watch_reenables_an_action_disabled_outside_the_window(
    airflow: Deployment, ui_payload_connections: dict[str, Any]
) -> None:
    """
    The asset watcher (ObjectChangeTrigger in the real triggerer) sees the escalation action
    disabled through the API, outside the pipeline; the scheduler starts the watch DAG, which
    enables it again. The first state the watcher records is taken before the change.
    """
    import requests

    dag_id = "tines_escalation_watch"
    sandbox = airflow.sandbox.admin
    airflow.wait_all_runs()
    sandbox.reset()  # the seed's escalation action (90005) is disabled
    airflow.api.request(
        "POST",
        "/api/v2/variables",
        json={"key": "tines_escalation_maintenance_window", "value": ""},  # no window: always outside
        expect=(201,),
    )
    tines = requests.Session()
    tines.trust_env = False
    tines.headers["Authorization"] = f"Bearer {airflow.sandbox.tines_token}"

    def set_disabled(disabled: bool) -> float:
        answer = tines.put(
            f"{airflow.sandbox.url}/api/v1/actions/90005", json={"disabled": disabled}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        return time.time()

    enabled_at = set_disabled(False)
    airflow.api.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    lag = float(sandbox.request("GET", "/_sandbox/config")["visibility_lag"])

    def watcher_saw_it_enabled() -> bool | None:
        # A poll of the watcher started after the enable became visible: its state shows it enabled.
        reads = [
            entry
            for entry in sandbox.journal(method="GET")
            if entry["path"] in ("/api/v1/actions/90005", "/api/v1/actions")
            and entry["time"] > enabled_at + lag + 1
        ]
        return True if reads else None

    wait_for(watcher_saw_it_enabled, timeout=airflow.budget.cap(180), interval=2, what="the watcher to poll")
    disabled_at = set_disabled(True)

    def reenabled_run() -> dict[str, Any] | None:
        runs = airflow.api.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 50})["dag_runs"]
        for run in runs:
            if run["state"] not in ("success", "failed"):
                continue
            states = {
                ti["task_id"]: ti["state"] for ti in airflow.api.task_instances(dag_id, run["dag_run_id"])
            }
            if states.get("reenable") == "success":
                return dict(run, states=states)
        return None

    run = wait_for(
        reenabled_run, timeout=airflow.budget.cap(240), interval=3, what="a watch run that re-enabled 90005"
    )
    assert run["state"] == "success", run
    assert run["run_type"] == "asset_triggered", run
    assert sandbox.state()["tines"]["actions"]["90005"]["disabled"] is False
    writes = [
        e for e in sandbox.journal(method="PUT", path="/api/v1/actions/90005") if e["time"] > disabled_at
    ]
    assert [e["body"] for e in writes] == [{"disabled": False}], writes  # one write: the re-enable
    airflow.api.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})
