"""
The sandbox's admin API refuses bad input whole (issue #11, item 15): every bad request is answered
422 with FastAPI's ``detail`` and changes nothing; and the sandbox binds a non-loopback interface
only when told to explicitly.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import requests

from airflow_provider_fluents_tines.sandbox import (
    DEFAULT_FLUENTS_TOKEN,
    DEFAULT_TINES_TOKEN,
    SandboxServer,
    SandboxState,
    default_seed,
    is_loopback,
)
from airflow_provider_fluents_tines.sandbox import __main__ as cli

NUMBER = "+14155550101"
JSON = {"Content-Type": "application/json"}


def api_answers(sandbox: SandboxServer) -> tuple[int, int]:
    """The status of one normal Fluents and one normal Tines request."""
    fluents = requests.get(
        sandbox.url + "/v1/numbers",
        params={"phone_number": NUMBER},
        headers={"Authorization": f"Bearer {DEFAULT_FLUENTS_TOKEN}"},
        timeout=5,
    )
    tines = requests.get(
        sandbox.url + "/api/v1/actions/90001",
        headers={"Authorization": f"Bearer {DEFAULT_TINES_TOKEN}"},
        timeout=5,
    )
    return fluents.status_code, tines.status_code


def admin_view(sandbox: SandboxServer) -> dict[str, Any]:
    get = lambda name: requests.get(sandbox.url + f"/_sandbox/{name}", timeout=5).json()  # noqa: E731
    return {"faults": get("faults"), "config": get("config"), "state": get("state")}


def send(sandbox: SandboxServer, method: str, name: str, payload: Any) -> requests.Response:
    url = sandbox.url + f"/_sandbox/{name}"
    if isinstance(payload, bytes):  # raw text, e.g. JSON that does not parse
        return requests.request(method, url, data=payload, headers=JSON, timeout=5)
    return requests.request(method, url, json=payload, timeout=5)


def assert_refused_and_nothing_changed(sandbox: SandboxServer, method: str, name: str, payload: Any) -> None:
    before = admin_view(sandbox)
    response = send(sandbox, method, name, payload)
    assert response.status_code == 422, (payload, response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail and {"loc", "msg", "type"} <= set(detail[0])
    assert admin_view(sandbox) == before
    assert api_answers(sandbox) == (200, 200)


# ---- faults ------------------------------------------------------------------------------------------

BAD_FAULTS = [
    {"count": "x", "status": 503},  # the issue's example: accepted, then 500 to every request
    {"count": "x"},
    {"count": "2", "status": 503},
    {"count": 0, "status": 503},
    {"count": -1, "status": 503},
    {"count": 1.5, "status": 503},
    {"count": True, "status": 503},
    {"count": None, "status": 503},
    {"status": 99},
    {"status": 100},  # a 1xx cannot be a final answer
    {"status": 600},
    {"status": "503"},
    {"status": 503.0},
    {"status": 503, "retry_after": [1]},
    {"status": 503, "retry_after": {"s": 1}},
    {"status": 503, "retry_after": -1},
    {"status": 503, "retry_after": ""},
    {"status": 503, "retry_after": True},
    {"retry_after": "5"},  # a Retry-After needs a status to travel with
    {"delay": -1},
    {"delay": 10_000},
    {"delay": "slow"},
    {"delay": None},
    {"drop": "yes"},
    {"drop": 1},
    {"malformed": "true"},
    {"status": 503, "drop": True},
    {"status": 503, "malformed": True},
    {"drop": True, "malformed": True},
    {},  # no effect at all
    {"method": 5, "status": 503},
    {"method": "GET POST", "status": 503},
    {"path": "", "status": 503},
    {"path": 7, "status": 503},
    {"status": 503, "colour": "red"},  # an unknown field (a typo) is not silently dropped
    {"status": 503, "id": 99},
    [],
    [{"status": 503}],
    "status=503",
    5,
    None,
    b'{"status": 503',
    b"",
]


@pytest.mark.parametrize("payload", BAD_FAULTS, ids=repr)
def test_bad_fault_is_refused_with_422_and_changes_nothing(fluents_tines_sandbox, payload):
    assert_refused_and_nothing_changed(fluents_tines_sandbox, "POST", "faults", payload)


def test_issue_example_no_longer_breaks_every_request(fluents_tines_sandbox):
    response = requests.post(fluents_tines_sandbox.url + "/_sandbox/faults", json={"count": "x"}, timeout=5)
    assert response.status_code == 422
    assert any(item["loc"][-1] == "count" for item in response.json()["detail"])
    assert api_answers(fluents_tines_sandbox) == (200, 200)
    assert requests.get(fluents_tines_sandbox.url + "/_sandbox/faults", timeout=5).json() == []


@pytest.mark.parametrize(
    "spec",
    [
        {"status": 503, "retry_after": "7", "count": 2, "method": "get", "path": "/api/*"},
        {"status": 429, "retry_after": 3},
        {"status": 503, "retry_after": "Wed, 21 Oct 2026 07:28:00 GMT"},
        {"status": 204},
        {"delay": 0.2},
        {"drop": True, "delay": 0.1},
        {"malformed": True},
    ],
)
def test_good_faults_are_accepted(fluents_tines_sandbox, spec):
    response = requests.post(fluents_tines_sandbox.url + "/_sandbox/faults", json=spec, timeout=5)
    assert response.status_code == 201, response.text
    fault = response.json()
    assert fault["count"] == spec.get("count", 1) and fault["method"] == spec.get("method", "*").upper()
    if "retry_after" in spec:
        assert fault["retry_after"] == str(spec["retry_after"])


def test_bodiless_status_faults_answer_without_a_body(fluents_tines_sandbox):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/v1/numbers", status=204)
    fluents_tines_sandbox.state.add_fault(method="GET", path="/v1/numbers", status=304)
    assert api_answers(fluents_tines_sandbox) == (204, 200)
    assert api_answers(fluents_tines_sandbox) == (304, 200)
    assert api_answers(fluents_tines_sandbox) == (200, 200)


def test_in_process_add_fault_refuses_the_same_and_adds_nothing():
    state = SandboxState()
    for spec in ({"count": "x"}, {"status": 700}, {"drop": True, "malformed": True}, {"colour": 1}):
        with pytest.raises(ValueError):
            state.add_fault(**spec)
    assert state.faults == []
    assert state.add_fault(status=503, retry_after=2).retry_after == "2"


# ---- config ------------------------------------------------------------------------------------------

BAD_CONFIGS = [
    {"visibility_lag": -1},
    {"visibility_lag": "slow"},
    {"visibility_lag": True},
    {"visibility_lag": 10**9},
    {"rate_limit": {"enabled": "yes"}},
    {"rate_limit": {"enabled": 1}},
    {"rate_limit": {"limit": 0}},
    {"rate_limit": {"limit": "x"}},
    {"rate_limit": {"limit": 2.5}},
    {"rate_limit": {"window": 0}},
    {"rate_limit": {"window": -5}},
    {"rate_limit": {"window": "1m"}},
    {"rate_limit": {"colour": 1}},
    {"rate_limit": 5},
    {"rate_limit": [True, 100, 60]},
    {"fluents_number_shape": "flat"},
    {"fluents_number_shape": 1},
    {"colour": 1},
    {"visibility_lag": 2, "rate_limit": {"limit": "x"}},  # half good: nothing of it applies
    {"visibility_lag": 2, "rate_limit": {"enabled": True}, "fluents_number_shape": "?"},
    [],
    "x",
    b"{",
]


@pytest.mark.parametrize("payload", BAD_CONFIGS, ids=repr)
def test_bad_config_is_refused_with_422_and_changes_nothing(fluents_tines_sandbox, payload):
    assert_refused_and_nothing_changed(fluents_tines_sandbox, "PUT", "config", payload)


def test_good_config_applies_whole(fluents_tines_sandbox):
    url = fluents_tines_sandbox.url + "/_sandbox/config"
    answer = requests.put(
        url,
        json={"visibility_lag": 0, "rate_limit": {"limit": 7}, "fluents_number_shape": "normalized"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "visibility_lag": 0.0,
        "rate_limit": {"enabled": False, "limit": 7, "window": 60.0},
        "fluents_number_shape": "normalized",
    }
    assert requests.put(url, json={}, timeout=5).json() == answer.json()  # nothing given, nothing changed


def test_in_process_configure_refuses_the_same_and_changes_nothing():
    state = SandboxState()
    before = state.configure()
    for kwargs in ({"visibility_lag": -1}, {"rate_limit": {"limit": "x"}}, {"fluents_number_shape": "flat"}):
        with pytest.raises(ValueError):
            state.configure(**kwargs)
    with pytest.raises(ValueError):
        state.configure(visibility_lag=3, rate_limit={"window": 0})
    assert state.configure() == before


# ---- reset -------------------------------------------------------------------------------------------


def _seed_with(**fluents: Any) -> dict[str, Any]:
    seed = default_seed()
    seed["fluents"].update(fluents)
    return seed


BAD_SEEDS = [
    [],
    "default",
    5,
    {"fluents": []},
    {"fluents": {"numbers": {}}},
    {"fluents": {"numbers": [{"label": "no number"}]}},
    {"fluents": {"numbers": [{"number": 14155550101}]}},
    {"fluents": {"actions": [{"label": "no id"}]}},
    {"fluents": {"agents": [{"name": "no id"}]}},
    {"fluents": {"number": []}},  # a typo of numbers
    {"tines": {"actions": [{"id": "abc", "type": "Agents::EmailAgent", "name": "x", "story_id": 1}]}},
    {"tines": {"actions": [{"id": 5}]}},
    {
        "tines": {
            "actions": [{"id": 5, "type": "Agents::EmailAgent", "name": "x", "story_id": 1, "sources": "4"}]
        }
    },
    {"tines": {"actions": "none"}},
    {"tines": {"info": "x"}},
    {"colour": 1},
    _seed_with(agents=[]),  # the numbers' inbound_agent ids now name no agent
    _seed_with(account_connections=[]),  # nor their telephony_account_connection ids
    _seed_with(numbers=default_seed()["fluents"]["numbers"] * 2),  # a number twice
    b"{not json",
]


@pytest.mark.parametrize("payload", BAD_SEEDS, ids=lambda p: repr(p)[:60])
def test_bad_seed_is_refused_with_422_and_the_old_state_stays(fluents_tines_sandbox, payload):
    state = fluents_tines_sandbox.state
    state.add_fault(method="GET", path="/never/*", status=500)  # a reset would clear it
    state.configure(visibility_lag=0.0)
    requests.post(
        fluents_tines_sandbox.url + "/v1/numbers/update",
        params={"phone_number": NUMBER},
        json={"label": "Changed", "example_context": {}},
        headers={"Authorization": f"Bearer {DEFAULT_FLUENTS_TOKEN}"},
        timeout=5,
    )
    journal = state.journal()
    assert_refused_and_nothing_changed(fluents_tines_sandbox, "POST", "reset", payload)
    assert state.snapshot()["fluents"]["numbers"][NUMBER]["label"] == "Changed"
    assert state.journal()[: len(journal)] == journal


def test_in_process_reset_refuses_a_bad_seed_and_keeps_the_state():
    state = SandboxState()
    state.update_fluents_number(NUMBER, {"label": "Kept", "example_context": {}})
    with pytest.raises(ValueError, match=r"agt_front_desk_v1.* is not in fluents\.agents"):
        state.reset(_seed_with(agents=[{"id": "agt_nobody"}]))
    assert state.snapshot()["fluents"]["numbers"][NUMBER]["label"] == "Kept"


def test_empty_and_null_reset_bodies_reload_the_default_seed(fluents_tines_sandbox):
    state = fluents_tines_sandbox.state
    for body in (None, b"null"):
        state.update_fluents_number(NUMBER, {"label": "Changed", "example_context": {}})
        if body is None:
            response = requests.post(fluents_tines_sandbox.url + "/_sandbox/reset", timeout=5)
        else:
            response = send(fluents_tines_sandbox, "POST", "reset", body)
        assert response.status_code == 204, response.text
        assert state.snapshot()["fluents"]["numbers"][NUMBER]["label"] == "Support line (West)"


@pytest.mark.parametrize("params", [{"method": "G T"}, {"method": ""}, {"path": ""}])
def test_bad_journal_filters_are_refused(fluents_tines_sandbox, params):
    response = requests.get(fluents_tines_sandbox.url + "/_sandbox/journal", params=params, timeout=5)
    assert response.status_code == 422 and response.json()["detail"]


# ---- non-loopback interfaces -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LocalHost"])
def test_loopback_hosts(host):
    assert is_loopback(host)
    SandboxServer(host=host)  # accepted without the flag


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "8.8.8.8", "2001:db8::1", "example.com", "", "128.0.0.1"],
)
def test_non_loopback_host_is_refused_before_binding(host, monkeypatch):
    assert not is_loopback(host)

    def no_socket(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr("socket.socket", no_socket)
    with pytest.raises(ValueError, match="allow_non_loopback=True"):
        SandboxServer(host=host)
    server = SandboxServer(host=host, allow_non_loopback=True)  # explicit: accepted, not bound yet
    assert server.host == host


def test_cli_refuses_a_non_loopback_host_without_the_flag(capsys, monkeypatch):
    def no_server(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a server was started")

    monkeypatch.setattr(cli.SandboxServer, "start", no_server)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--host", "0.0.0.0", "--port", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "0.0.0.0" in err and "--allow-non-loopback" in err


def test_cli_flag_parses_and_defaults_off():
    assert cli.parse_args([]).allow_non_loopback is False
    assert cli.parse_args(["--host", "0.0.0.0", "--allow-non-loopback"]).allow_non_loopback is True


def test_the_sandbox_imports_no_airflow():
    code = (
        "import sys, airflow_provider_fluents_tines.sandbox.__main__, airflow_provider_fluents_tines.sandbox.app;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
