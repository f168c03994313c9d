"""The sandbox through its real HTTP interface: endpoints, rules, auth, pagination and every knob."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests

from airflow_provider_fluents_tines.sandbox import DEFAULT_FLUENTS_TOKEN, DEFAULT_TINES_TOKEN

TRANSFER = "3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11"
NUMBER = "+14155550101"


def _api_session(sandbox, token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.url = lambda path: sandbox.url + path  # type: ignore[attr-defined]
    return session


@pytest.fixture
def fluents(fluents_tines_sandbox):
    return _api_session(fluents_tines_sandbox, DEFAULT_FLUENTS_TOKEN)


@pytest.fixture
def tines(fluents_tines_sandbox):
    return _api_session(fluents_tines_sandbox, DEFAULT_TINES_TOKEN)


def _nest(response, status, message_part):
    body = response.json()
    assert response.status_code == status
    assert set(body) == {"message", "error", "statusCode"} and body["statusCode"] == status
    assert message_part in str(body["message"])


# ---- Fluents ---------------------------------------------------------------------------------------


def test_fluents_get_and_partial_update_action(fluents):
    action = fluents.get(fluents.url("/v1/actions"), params={"id": TRANSFER}).json()
    assert action["type"] == "action_transfer_call" and {"id", "user_id", "type", "config"} <= set(action)
    response = fluents.post(
        fluents.url("/v1/actions/update"), params={"id": TRANSFER}, json={"label": "Billing desk"}
    )
    assert response.status_code == 201
    assert response.json()["label"] == "Billing desk"
    assert response.json()["config"] == action["config"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "action_teleport"}, "type must be one of"),
        ({"type": "action_transfer_call", "config": {}}, "config.phone_number is required"),
        ({"config": {"phone_number": "555"}}, "config.phone_number must be an E.164"),
        ({"label": 5}, "label must be a string"),
        ({"action_trigger": {"type": "whenever"}}, "action_trigger.type must be one of"),
    ],
)
def test_fluents_action_rules_answer_400_with_the_nest_shape(fluents, body, message):
    response = fluents.post(fluents.url("/v1/actions/update"), params={"id": TRANSFER}, json=body)
    _nest(response, 400, message)
    assert isinstance(response.json()["message"], list)


def test_fluents_404_and_missing_query(fluents):
    _nest(fluents.get(fluents.url("/v1/actions"), params={"id": "nope"}), 404, "not found")
    _nest(fluents.post(fluents.url("/v1/actions/update"), params={"id": "nope"}, json={}), 404, "not found")
    _nest(fluents.get(fluents.url("/v1/actions")), 400, "id should not be empty")
    _nest(
        fluents.post(
            fluents.url("/v1/numbers/update"),
            params={"phone_number": "+19995550000"},
            json={"example_context": {}},
        ),
        404,
        "not found",
    )


def test_fluents_number_get_embeds_the_agent_and_update_normalizes(fluents):
    number = fluents.get(fluents.url("/v1/numbers"), params={"phone_number": NUMBER}).json()
    assert number["inbound_agent"]["id"] == "agt_front_desk_v1"
    response = fluents.post(
        fluents.url("/v1/numbers/update"),
        params={"phone_number": NUMBER},
        json={"inbound_agent": "agt_front_desk_v2", "example_context": number["example_context"]},
    )
    assert response.status_code == 201
    updated = response.json()
    assert (
        updated["inbound_agent"] == "agt_front_desk_v2" and updated["inbound_agent_name"] == "Front Desk v2"
    )
    assert updated["label"] == number["label"]
    detached = fluents.post(
        fluents.url("/v1/numbers/update"),
        params={"phone_number": NUMBER},
        json={"inbound_agent": None, "example_context": {}},
    ).json()
    assert detached["inbound_agent"] is None and detached["example_context"] == {}


def test_fluents_number_rules(fluents):
    url = fluents.url("/v1/numbers/update")
    _nest(
        fluents.post(url, params={"phone_number": NUMBER}, json={"label": "x"}),
        400,
        "example_context is required",
    )
    _nest(
        fluents.post(
            url, params={"phone_number": NUMBER}, json={"example_context": {}, "outbound_only": "yes"}
        ),
        400,
        "outbound_only must be a boolean",
    )
    _nest(
        fluents.post(
            url, params={"phone_number": NUMBER}, json={"example_context": {}, "inbound_agent": "agt_x"}
        ),
        400,
        "agt_x does not exist",
    )
    _nest(fluents.post(url, params={"phone_number": NUMBER}, data="not json"), 400, "not valid JSON")


def test_unencoded_plus_is_not_found(fluents):
    raw = fluents.url("/v1/numbers?phone_number=+14155550101")
    _nest(fluents.get(raw), 404, "not found")
    assert fluents.get(fluents.url("/v1/numbers?phone_number=%2B14155550101")).status_code == 200


def test_fluents_pagination(fluents):
    first = fluents.get(fluents.url("/v1/numbers/list"), params={"page": 1, "size": 2}).json()
    last = fluents.get(fluents.url("/v1/numbers/list"), params={"page": 3, "size": 2}).json()
    assert (len(first["items"]), first["has_more"], first["total"], first["page"], first["size"]) == (
        2,
        True,
        5,
        1,
        2,
    )
    assert (len(last["items"]), last["has_more"]) == (1, False)
    _nest(
        fluents.get(fluents.url("/v1/actions/list"), params={"size": 101}),
        400,
        "size must be between 1 and 100",
    )


# ---- Tines -----------------------------------------------------------------------------------------

RESPONSE_FIELDS = {
    "id",
    "type",
    "user_id",
    "options",
    "name",
    "description",
    "schedule",
    "blended_events_count",
    "logs_count",
    "last_check_at",
    "last_receive_at",
    "created_at",
    "updated_at",
    "last_event_at",
    "last_error_log_at",
    "disabled",
    "guid",
    "group_id",
    "position",
    "story_id",
    "story_mode",
    "nested_group_id",
    "team_id",
    "sources",
    "receivers",
    "monitor_failures",
    "monitor_all_events",
    "monitor_no_events_emitted",
    "time_saved_unit",
    "time_saved_value",
    "page",
    "action_memory_contents",
    "slug",
    "links_to_sources",
    "links_to_receivers",
}


def test_tines_put_returns_every_response_field_and_moves_updated_at(tines):
    url = tines.url("/api/v1/actions/90005")
    before = tines.get(url).json()
    first = tines.put(url, json={"disabled": False, "name": "Escalate to on-call (v2)"})
    second = tines.put(url, json={"disabled": False})
    assert first.status_code == second.status_code == 200
    assert set(first.json()) >= RESPONSE_FIELDS
    assert first.json()["slug"] == "escalate_to_on_call_v2"
    assert before["updated_at"] < first.json()["updated_at"] < second.json()["updated_at"]
    assert second.json()["options"] == before["options"]


def test_tines_links_stay_symmetric(tines):
    response = tines.put(
        tines.url("/api/v1/actions/90006"),
        json={"links_to_sources": [{"source_id": 90003, "type": "NO_MATCH"}]},
    )
    assert response.json()["sources"] == [90003]
    assert response.json()["links_to_sources"] == [{"source_id": 90003, "link_type": "NO_MATCH"}]
    enrich = tines.get(tines.url("/api/v1/actions/90003")).json()
    condition = tines.get(tines.url("/api/v1/actions/90004")).json()
    assert enrich["receivers"] == [90004, 90006] and condition["receivers"] == [90005]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"source_ids": [90001], "links_to_sources": [{"source_id": 90001}]}, "mutually exclusive"),
        ({"receiver_ids": [90001], "links_to_receivers": [{"receiver_id": 90001}]}, "mutually exclusive"),
        (
            {"links_to_receivers": [{"receiver_id": 90001, "type": "SOMETIMES"}]},
            "must be one of DEFAULT, NO_MATCH, FAILURE",
        ),
        ({"monitor_failures": True}, "must be sent together with monitor_all_events"),
        ({"monitor_all_events": True}, "must be sent together with monitor_failures"),
        ({"monitor_no_events_emitted": 3600}, "needs both monitor_failures and monitor_all_events"),
        ({"position": {"x": 1}}, "position must be an object {x: int, y: int}"),
        ({"num_runs_to_save": 0}, "num_runs_to_save must be a positive integer"),
        ({"num_runs_to_save": 5}, "applies only to Receive Email (Agents::IMAPAgent) and Webhook"),
        ({"source_ids": [90101]}, "another story"),
    ],
)
def test_tines_rules_answer_400(tines, body, message):
    response = tines.put(tines.url("/api/v1/actions/90002"), json=body)
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]


def test_tines_monitor_trio_and_run_saving_accepted(tines):
    trio = {"monitor_failures": True, "monitor_all_events": False, "monitor_no_events_emitted": 3600}
    assert (
        tines.put(tines.url("/api/v1/actions/90002"), json=trio).json()["monitor_no_events_emitted"] == 3600
    )
    webhook = tines.put(tines.url("/api/v1/actions/90001"), json={"num_runs_to_save": 25}).json()
    assert webhook["story_run_save_setting"] == {"num_runs_to_save": 25}


def test_tines_404_shape(tines):
    response = tines.get(tines.url("/api/v1/actions/4"))
    assert response.status_code == 404 and response.json() == {"errors": [{"message": "Action 4 not found"}]}


def test_tines_list_pagination_and_filters(tines, fluents_tines_sandbox):
    page = tines.get(tines.url("/api/v1/actions"), params={"story_id": 4021, "per_page": 3}).json()
    assert [a["id"] for a in page["agents"]] == [90001, 90002, 90003]
    meta = page["meta"]
    assert meta["next_page"].startswith(fluents_tines_sandbox.url + "/api/v1/actions?")
    assert "page=2" in meta["next_page"] and "story_id=4021" in meta["next_page"]
    assert (meta["pages"], meta["count"], meta["next_page_number"], meta["previous_page"]) == (3, 7, 2, None)
    last = tines.get(meta["next_page"].replace("page=2", "page=3")).json()
    assert last["meta"]["next_page"] is None and len(last["agents"]) == 1
    everything = tines.get(tines.url("/api/v1/actions"), params={"per_page": 900}).json()
    assert everything["meta"]["per_page"] == 500 and everything["meta"]["count"] == 8
    assert tines.get(tines.url("/api/v1/actions"), params={"team_id": 999}).json()["agents"] == []
    info = tines.get(tines.url("/api/v1/info"))
    assert info.status_code == 200 and info.json()["name"] == "Sandbox tenant"


# ---- auth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {DEFAULT_TINES_TOKEN}"])
def test_fluents_401(fluents_tines_sandbox, header):
    headers = {"Authorization": header} if header else {}
    response = requests.get(fluents_tines_sandbox.url + "/v1/actions/list", headers=headers)
    assert response.status_code == 401 and response.json()["statusCode"] == 401


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {DEFAULT_FLUENTS_TOKEN}"])
def test_tines_401(fluents_tines_sandbox, header):
    headers = {"Authorization": header} if header else {}
    response = requests.get(fluents_tines_sandbox.url + "/api/v1/actions/90001", headers=headers)
    assert response.status_code == 401 and "Authentication failed" in response.json()["error"]


# ---- knobs -----------------------------------------------------------------------------------------


def test_rate_limit_on_tines_actions_with_retry_after(tines, fluents_tines_sandbox):
    admin = fluents_tines_sandbox.url + "/_sandbox/config"
    config = requests.put(admin, json={"rate_limit": {"enabled": True, "limit": 5, "window": 1.5}}).json()
    assert config["rate_limit"] == {"enabled": True, "limit": 5, "window": 1.5}
    statuses = [tines.get(tines.url("/api/v1/actions/90001")).status_code for _ in range(5)]
    limited = tines.get(tines.url("/api/v1/actions/90001"))
    assert statuses == [200] * 5
    assert limited.status_code == 429 and limited.headers["Retry-After"] in ("1", "2")
    assert tines.get(tines.url("/api/v1/info")).status_code == 200  # only the actions family is limited
    time.sleep(1.6)
    assert tines.get(tines.url("/api/v1/actions/90001")).status_code == 200


def test_rate_limit_is_off_by_default(tines):
    assert {tines.get(tines.url("/api/v1/actions/90001")).status_code for _ in range(120)} == {200}


def test_visibility_lag(tines, fluents_tines_sandbox):
    fluents_tines_sandbox.state.configure(visibility_lag=0.6)
    url = tines.url("/api/v1/actions/90005")
    assert tines.put(url, json={"disabled": False}).json()["disabled"] is False
    assert tines.get(url).json()["disabled"] is True
    assert fluents_tines_sandbox.state.snapshot()["tines"]["actions"][90005]["disabled"] is False
    time.sleep(0.7)
    assert tines.get(url).json()["disabled"] is False


def test_fault_status_with_retry_after_then_normal(tines, fluents_tines_sandbox):
    admin = fluents_tines_sandbox.url + "/_sandbox/faults"
    fault = {"method": "GET", "path": "/api/v1/actions/*", "status": 503, "retry_after": "7", "count": 2}
    assert requests.post(admin, json=fault).status_code == 201
    url = tines.url("/api/v1/actions/90001")
    answers = [tines.get(url) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["Retry-After"] == "7"
    assert tines.put(url, json={"name": "x"}).status_code == 200  # another method is not matched


def test_fault_delay(fluents, fluents_tines_sandbox):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/v1/numbers", delay=0.5)
    started = time.monotonic()
    assert fluents.get(fluents.url("/v1/numbers"), params={"phone_number": NUMBER}).status_code == 200
    assert time.monotonic() - started >= 0.5


def test_fault_drop_and_malformed(fluents, fluents_tines_sandbox):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/v1/numbers", drop=True)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        fluents.get(fluents.url("/v1/numbers"), params={"phone_number": NUMBER})
    fluents_tines_sandbox.state.add_fault(method="GET", path="/v1/numbers", malformed=True)
    response = fluents.get(fluents.url("/v1/numbers"), params={"phone_number": NUMBER})
    with pytest.raises(ValueError):
        response.json()


def test_journal_records_requests_with_the_token_redacted(fluents, fluents_tines_sandbox):
    fluents.post(
        fluents.url("/v1/numbers/update"),
        params={"phone_number": NUMBER},
        json={"label": "x", "example_context": {}},
    )
    (entry,) = requests.get(fluents_tines_sandbox.url + "/_sandbox/journal", params={"method": "POST"}).json()
    assert (entry["method"], entry["path"], entry["query"]) == (
        "POST",
        "/v1/numbers/update",
        "phone_number=%2B14155550101",
    )
    assert entry["headers"]["authorization"] == "Bearer ***"
    assert DEFAULT_FLUENTS_TOKEN not in str(entry)
    assert entry["body"] == {"label": "x", "example_context": {}}
    requests.delete(fluents_tines_sandbox.url + "/_sandbox/journal")
    assert fluents_tines_sandbox.state.journal() == []


def test_reset_and_reseed_over_http(tines, fluents_tines_sandbox):
    admin = fluents_tines_sandbox.url + "/_sandbox/reset"
    seed = {
        "tines": {
            "actions": [{"id": 5, "type": "Agents::EmailAgent", "name": "Only", "story_id": 1, "team_id": 1}]
        }
    }
    assert requests.post(admin, json=seed).status_code == 204
    assert [a["id"] for a in tines.get(tines.url("/api/v1/actions")).json()["agents"]] == [5]
    requests.post(admin)
    assert tines.get(tines.url("/api/v1/actions")).json()["meta"]["count"] == 8


def test_docs_page_and_openapi_document_are_served(fluents_tines_sandbox):
    docs = requests.get(fluents_tines_sandbox.url + "/_sandbox/docs", timeout=5)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/_sandbox/openapi.json" in docs.text
    spec = requests.get(fluents_tines_sandbox.url + "/_sandbox/openapi.json", timeout=5).json()
    admin = {path for path in spec["paths"] if path.startswith("/_sandbox/")}
    assert admin == {f"/_sandbox/{name}" for name in ("journal", "faults", "config", "reset", "state")}
    assert {"/v1/numbers/update", "/api/v1/actions/{action_id}"} <= set(spec["paths"])


def test_cli_starts_quickly_and_prints_the_connections(tmp_path):
    env = {**os.environ, "FLUENTS_TINES_SANDBOX_TINES_TOKEN": "cli-token-123"}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_fluents_tines.sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        url = first_line.rsplit(" ", 1)[-1].strip()
        response = requests.get(
            url + "/api/v1/info", headers={"Authorization": "Bearer cli-token-123"}, timeout=2
        )
        elapsed = time.monotonic() - started
        rest = [process.stdout.readline() for _ in range(4)]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert response.status_code == 200
    # Nothing heavy is imported (no Airflow): about 1 s here. The bound only catches a regression to
    # Airflow-sized start-up (5 s and more) without failing on a busy machine.
    assert elapsed < 4.5, f"first answer after {elapsed:.2f} s"
    assert any(
        line.startswith("export AIRFLOW_CONN_TINES_DEFAULT=") and "cli-token-123" in line for line in rest
    )
