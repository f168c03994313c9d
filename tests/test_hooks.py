"""The Fluents and Tines hooks against real HTTP servers on loopback (the sandbox, or pytest-httpserver)."""

from __future__ import annotations

import email.utils
import json
import logging
import time

import pytest

from airflow_provider_fluents_tines.exceptions import ApiClientError, ApiRequestError, InvalidFieldError
from airflow_provider_fluents_tines.hooks.base import USER_AGENT, RetryPolicy
from airflow_provider_fluents_tines.hooks.budget import forget_budgets
from airflow_provider_fluents_tines.hooks.fluents import FluentsHook
from airflow_provider_fluents_tines.hooks.tines import TinesHook
from airflow_provider_fluents_tines.version_compat import AirflowFailException

NUMBER = "+14155550101"


def _conn(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


# ---- paths, methods, encoding, auth ---------------------------------------------------------------


def test_fluents_paths_methods_and_plus_encoding(fluents_tines_sandbox):
    hook = FluentsHook()
    number = hook.get_number(NUMBER)
    updated = hook.update_number(NUMBER, label="West", example_context={"region": "us-west"})
    action = hook.update_action("3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11", label="Billing")

    assert number["number"] == NUMBER
    assert updated["label"] == "West"
    assert action["label"] == "Billing"
    calls = [(e["method"], e["path"], e["query"]) for e in fluents_tines_sandbox.state.journal()]
    assert calls == [
        ("GET", "/v1/numbers", "phone_number=%2B14155550101"),
        ("POST", "/v1/numbers/update", "phone_number=%2B14155550101"),
        ("POST", "/v1/actions/update", "id=3f2b6c1e-8d4a-4f7b-9e21-6a0c5d9b7e11"),
    ]
    bodies = [e["body"] for e in fluents_tines_sandbox.state.journal(method="POST")]
    assert bodies == [{"label": "West", "example_context": {"region": "us-west"}}, {"label": "Billing"}]


def test_tines_paths_and_methods(fluents_tines_sandbox):
    hook = TinesHook()
    assert hook.get_action(90005)["disabled"] is True
    assert hook.update_action("90005", disabled=False)["disabled"] is False
    calls = [(e["method"], e["path"], e["body"]) for e in fluents_tines_sandbox.state.journal()]
    assert calls == [
        ("GET", "/api/v1/actions/90005", None),
        ("PUT", "/api/v1/actions/90005", {"disabled": False}),
    ]


def test_auth_header_user_agent_and_extras_never_headers(httpserver, monkeypatch):
    _conn(
        monkeypatch,
        "tines_default",
        conn_type="tines",
        host=httpserver.url_for("/"),
        password="tines-secret-key-123",
        extra={"timeout": 5, "workspace_id": "w-1"},
    )
    httpserver.expect_request("/api/v1/actions/7").respond_with_json({"id": 7})
    TinesHook().get_action(7)
    (request, _), *_ = httpserver.log
    assert request.headers["Authorization"] == "Bearer tines-secret-key-123"
    assert request.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("airflow-provider-fluents-tines/")
    assert "workspace_id" not in request.headers and "timeout" not in request.headers


def test_one_tcp_connection_for_many_calls(fluents_tines_sandbox):
    hook = TinesHook()
    for _ in range(25):
        hook.get_action(90001)
    clients = {e["client"] for e in fluents_tines_sandbox.state.journal()}
    assert len(fluents_tines_sandbox.state.journal()) == 25
    assert len(clients) == 1


def test_connection_is_looked_up_once(fluents_tines_sandbox, monkeypatch):
    hook = FluentsHook()
    lookups = []
    original = FluentsHook.get_connection.__func__

    def counting(cls, conn_id):
        lookups.append(conn_id)
        return original(cls, conn_id)

    monkeypatch.setattr(FluentsHook, "get_connection", classmethod(counting))
    for _ in range(3):
        hook.get_number(NUMBER)
    assert lookups == ["fluents_default"]


# ---- pagination ------------------------------------------------------------------------------------


def test_fluents_lists_walk_every_page(fluents_tines_sandbox):
    seed = fluents_tines_sandbox.state
    numbers = [
        {"id": f"n{i}", "user_id": "u", "number": f"+1415555{i:04d}", "example_context": {}}
        for i in range(230)
    ]
    seed.reset({"fluents": {"numbers": numbers, "actions": [], "agents": []}})
    listed = FluentsHook().list_numbers()
    assert [n["number"] for n in listed] == [n["number"] for n in numbers]
    assert [e["query"] for e in seed.journal()] == ["page=1&size=100", "page=2&size=100", "page=3&size=100"]
    assert len(FluentsHook().list_actions()) == 0


def test_tines_list_follows_next_page(fluents_tines_sandbox):
    actions = TinesHook().list_actions(per_page=3, story_id=4021)
    assert sorted(a["id"] for a in actions) == [90001, 90002, 90003, 90004, 90005, 90006, 90007]
    queries = [e["query"] for e in fluents_tines_sandbox.state.journal()]
    assert len(queries) == 3
    assert all("story_id=4021" in q for q in queries)
    assert "page=3" in queries[2]


def test_tines_next_page_never_sends_the_key_to_another_host(httpserver, monkeypatch):
    _conn(monkeypatch, "tines_default", conn_type="tines", host=httpserver.url_for("/"), password="k" * 12)
    first = {
        "agents": [{"id": 1}],
        "meta": {"next_page": "https://elsewhere.example/api/v1/actions?page=2&per_page=1"},
    }
    httpserver.expect_ordered_request("/api/v1/actions", query_string="per_page=1&page=1").respond_with_json(
        first
    )
    last = {"agents": [{"id": 2}], "meta": {"next_page": None}}
    httpserver.expect_ordered_request("/api/v1/actions", query_string="page=2&per_page=1").respond_with_json(
        last
    )
    assert [a["id"] for a in TinesHook().list_actions(per_page=1)] == [1, 2]
    assert len(httpserver.log) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"per_page": 501}, "per_page"), ({"colour": "red"}, "colour")]
)
def test_tines_list_refuses_bad_arguments(fluents_tines_sandbox, kwargs, field):
    with pytest.raises(InvalidFieldError, match=field):
        TinesHook().list_actions(**kwargs)
    assert fluents_tines_sandbox.state.journal() == []


# ---- retry policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_transient_statuses_are_retried(fluents_tines_sandbox, fast_retries, status):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/*", status=status, count=2)
    assert TinesHook(retry_policy=fast_retries).get_action(90001)["id"] == 90001
    assert len(fluents_tines_sandbox.state.journal()) == 3


@pytest.mark.parametrize("fault", [{"drop": True}, {"malformed": True}])
def test_dropped_connections_and_malformed_bodies_are_retried(fluents_tines_sandbox, fast_retries, fault):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/v1/numbers", **fault)
    assert FluentsHook(retry_policy=fast_retries).get_number(NUMBER)["number"] == NUMBER
    assert len(fluents_tines_sandbox.state.journal()) == 2


def test_timeouts_are_retried(fluents_tines_sandbox, fast_retries):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/v1/numbers", delay=1.0)
    hook = FluentsHook(retry_policy=fast_retries, timeout=0.3)
    assert hook.get_number(NUMBER)["number"] == NUMBER
    assert len(fluents_tines_sandbox.state.journal()) == 2


def test_retry_after_seconds_is_honoured(fluents_tines_sandbox, fast_retries):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/*", status=429, retry_after="1")
    started = time.monotonic()
    TinesHook(retry_policy=fast_retries).get_action(90001)
    assert time.monotonic() - started >= 1.0
    assert len(fluents_tines_sandbox.state.journal()) == 2


def test_retry_after_http_date_is_honoured(fluents_tines_sandbox, fast_retries):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    fluents_tines_sandbox.state.add_fault(
        method="GET", path="/api/v1/actions/*", status=503, retry_after=when
    )
    started = time.monotonic()
    TinesHook(retry_policy=fast_retries).get_action(90001)
    # The date has whole-second resolution: between 1 and 2 seconds away when sent.
    assert time.monotonic() - started >= 0.9
    assert len(fluents_tines_sandbox.state.journal()) == 2


def test_attempts_are_bounded(fluents_tines_sandbox, fast_retries):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/*", status=503, count=100)
    with pytest.raises(ApiRequestError) as err:
        TinesHook(retry_policy=fast_retries, max_attempts=3).get_action(90001)
    assert not isinstance(err.value, AirflowFailException)
    assert err.value.http_status == 503
    assert len(fluents_tines_sandbox.state.journal()) == 3


def test_total_retry_wait_is_bounded(fluents_tines_sandbox, fast_retries):
    fluents_tines_sandbox.state.add_fault(
        method="GET", path="/api/v1/actions/*", status=429, retry_after="30"
    )
    started = time.monotonic()
    with pytest.raises(ApiRequestError, match="HTTP 429") as err:
        TinesHook(retry_policy=fast_retries, max_retry_wait=2).get_action(90001)
    assert time.monotonic() - started < 2
    assert err.value.retry_after == 30
    assert len(fluents_tines_sandbox.state.journal()) == 1


def test_retry_settings_come_from_connection_extras(fluents_tines_sandbox, monkeypatch):
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    _conn(
        monkeypatch,
        "tines_extras",
        **{**env, "extra": {"max_attempts": 2, "max_retry_wait": 7, "timeout": 4}},
    )
    settings = TinesHook("tines_extras").settings
    assert (settings.retry_policy.max_attempts, settings.retry_policy.max_retry_wait, settings.timeout) == (
        2,
        7,
        4,
    )
    assert TinesHook("tines_extras", max_attempts=4).settings.retry_policy.max_attempts == 4


# What each way of making a connection stores in `extra` for fields the user did not touch or typed.
UI_FORM_UNTOUCHED = {
    "timeout": None,
    "max_attempts": None,
    "max_retry_wait": None,
    "requests_per_minute": None,
    "allow_insecure_http": None,
}


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(UI_FORM_UNTOUCHED, id="ui-form-nulls"),
        pytest.param({key: "" for key in UI_FORM_UNTOUCHED}, id="blank-strings"),
        pytest.param({key: "  " for key in UI_FORM_UNTOUCHED}, id="whitespace"),
        pytest.param({}, id="no-extras"),
        pytest.param(None, id="extra-absent"),
    ],
)
@pytest.mark.parametrize("hook_class", [FluentsHook, TinesHook])
def test_untouched_extras_mean_their_defaults(fluents_tines_sandbox, monkeypatch, hook_class, extra):
    conn_id = f"{hook_class.conn_type}_default"
    fields = json.loads(fluents_tines_sandbox.connection_env()[f"AIRFLOW_CONN_{conn_id.upper()}"])
    if extra is not None:
        fields["extra"] = extra
    _conn(monkeypatch, conn_id, **fields)
    hook = hook_class(conn_id)
    settings = hook.settings
    assert (settings.timeout, settings.retry_policy) == (30.0, RetryPolicy())
    ok, message = hook.test_connection()
    assert ok, message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            {"timeout": "12.5", "max_attempts": "3", "max_retry_wait": "40", "allow_insecure_http": "true"},
            (12.5, 3, 40.0),
            id="cli-strings",
        ),
        pytest.param(
            {"timeout": 12.5, "max_attempts": 3, "max_retry_wait": 40, "allow_insecure_http": False},
            (12.5, 3, 40.0),
            id="json-values",
        ),
        pytest.param(
            {"extra__tines__timeout": 12.5, "extra__tines__max_attempts": "3", "max_retry_wait": 40},
            (12.5, 3, 40.0),
            id="prefixed-form-keys",
        ),
    ],
)
def test_given_extras_are_read_from_every_connection_format(monkeypatch, extra, expected):
    _conn(
        monkeypatch, "tines_x", conn_type="tines", host="http://127.0.0.1:9", password="k" * 12, extra=extra
    )
    settings = TinesHook("tines_x").settings
    assert (
        settings.timeout,
        settings.retry_policy.max_attempts,
        settings.retry_policy.max_retry_wait,
    ) == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"allow_insecure_http": "maybe"}, "extra.allow_insecure_http: must be true or false, got 'maybe'"),
        ({"max_attempts": 0}, "extra.max_attempts: must be an integer >= 1, got 0"),
        ({"timeout": "soon"}, "extra.timeout: must be a number >= 0.001, got 'soon'"),
    ],
)
def test_bad_extras_are_named(monkeypatch, extra, message):
    _conn(
        monkeypatch, "tines_bad", conn_type="tines", host="http://127.0.0.1:9", password="k" * 12, extra=extra
    )
    with pytest.raises(InvalidFieldError) as err:
        _ = TinesHook("tines_bad").settings
    assert str(err.value) == message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_never_retried_and_fail_without_task_retries(
    fluents_tines_sandbox, fast_retries, status
):
    fluents_tines_sandbox.state.add_fault(method="PUT", path="/api/v1/actions/*", status=status, count=5)
    with pytest.raises(ApiClientError) as err:
        TinesHook(retry_policy=fast_retries).update_action(90001, name="x")
    assert isinstance(err.value, AirflowFailException)
    assert err.value.http_status == status
    assert "PUT /api/v1/actions/90001" in str(err.value)
    assert f"sandbox fault: HTTP {status}" in str(err.value)
    assert len(fluents_tines_sandbox.state.journal()) == 1


def test_real_401_and_404_carry_the_api_message(fluents_tines_sandbox, monkeypatch):
    with pytest.raises(ApiClientError, match=r"Number \+19995550000 not found") as missing:
        FluentsHook().get_number("+19995550000")
    assert missing.value.http_status == 404
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    _conn(monkeypatch, "tines_bad_key", **{**env, "password": "wrong-key-0000"})
    with pytest.raises(ApiClientError, match="Authentication failed") as denied:
        TinesHook("tines_bad_key").get_action(90001)
    assert denied.value.http_status == 401


# ---- error bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            '{"message": "Number not found", "error": "Not Found", "statusCode": 404}',
            "json",
            "Number not found",
        ),
        (
            '{"message": ["label must be a string", "x is bad"], "error": "Bad Request", "statusCode": 400}',
            "json",
            "label must be a string; x is bad",
        ),
        ('{"errors": [{"message": "Options is invalid", "details": "x"}]}', "json", "Options is invalid"),
        ('[{"message": "Name has already been taken"}]', "json", "Name has already been taken"),
        ('{"error": "Action not found"}', "json", "Action not found"),
        ('{"errors": {"name": ["can\'t be blank"]}}', "json", "name can't be blank"),
        (
            '{"detail": [{"loc": ["body", "label"], "msg": "field required"}]}',
            "json",
            "label: field required",
        ),
        ("Service temporarily down for maintenance", "text", "Service temporarily down for maintenance"),
        ("", "text", "(empty body)"),
    ],
)
def test_error_message_extraction_for_every_body_shape(httpserver, monkeypatch, body, content_type, message):
    _conn(monkeypatch, "tines_default", conn_type="tines", host=httpserver.url_for("/"), password="k" * 12)
    mime = "application/json" if content_type == "json" else "text/plain"
    httpserver.expect_request("/api/v1/actions/5").respond_with_data(body, status=422, content_type=mime)
    with pytest.raises(ApiClientError) as err:
        TinesHook().get_action(5)
    assert err.value.api_message == message
    assert str(err.value) == f"Tines API GET /api/v1/actions/5 failed (HTTP 422): {message}"


# ---- secrets ---------------------------------------------------------------------------------------


def test_api_key_is_masked_in_errors_logs_and_reprs(httpserver, monkeypatch, caplog, capsys, fast_retries):
    from airflow_provider_fluents_tines.version_compat import redact

    key = "sk_live_supersecret_4242"
    _conn(monkeypatch, "fluents_default", conn_type="fluents", host=httpserver.url_for("/"), password=key)
    echo = json.dumps(
        {"message": f"key {key} was refused", "error": "Service Unavailable", "statusCode": 503}
    )
    httpserver.expect_request("/v1/numbers").respond_with_data(
        echo, status=503, content_type="application/json"
    )
    hook = FluentsHook(retry_policy=fast_retries, max_attempts=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(ApiRequestError) as err:
        hook.get_number(NUMBER)
    assert key not in str(err.value) and "key *** was refused" in str(err.value)
    logged = caplog.text + "".join(capsys.readouterr())  # Airflow's structlog writes to stdout
    assert key not in logged and "key *** was refused" in logged
    assert key not in repr(hook.settings) and key not in repr(hook.session.auth)
    assert redact(f"token={key}") == "token=***"


# ---- hosts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("my-tenant.tines.com", None, "https://my-tenant.tines.com"),
        ("https://my-tenant.tines.com", None, "https://my-tenant.tines.com"),
        ("https://my-tenant.tines.com/", None, "https://my-tenant.tines.com"),
        ("my-tenant.tines.io", None, "https://my-tenant.tines.io"),
        ("https://tines.example.org/api/v1", None, "https://tines.example.org"),
        ("tines.corp.internal", 8443, "https://tines.corp.internal:8443"),
        ("http://127.0.0.1:8765", None, "http://127.0.0.1:8765"),
        ("http://localhost", 9000, "http://localhost:9000"),
        ("http://[::1]:8080", None, "http://[::1]:8080"),
    ],
)
def test_tines_tenant_host_parsing(monkeypatch, host, port, expected):
    _conn(monkeypatch, "tines_host", conn_type="tines", host=host, port=port, password="k" * 12)
    assert TinesHook("tines_host").settings.base_url == expected


def test_fluents_host_defaults_to_the_public_api(monkeypatch):
    _conn(monkeypatch, "fluents_plain", conn_type="fluents", password="k" * 12)
    assert FluentsHook("fluents_plain").settings.base_url == "https://api.fluents.ai"


@pytest.mark.parametrize("host", ["http://my-tenant.tines.com", "http://10.0.0.5"])
def test_plain_http_only_on_loopback_unless_opted_out(monkeypatch, host):
    _conn(monkeypatch, "tines_http", conn_type="tines", host=host, password="k" * 12)
    with pytest.raises(InvalidFieldError, match="must use https"):
        _ = TinesHook("tines_http").settings
    _conn(
        monkeypatch,
        "tines_http",
        conn_type="tines",
        host=host,
        password="k" * 12,
        extra={"allow_insecure_http": True},
    )
    assert TinesHook("tines_http").settings.base_url == host


def test_missing_tenant_and_missing_key_are_named(monkeypatch):
    _conn(monkeypatch, "tines_nohost", conn_type="tines", password="k" * 12)
    with pytest.raises(InvalidFieldError, match="host"):
        _ = TinesHook("tines_nohost").settings
    _conn(monkeypatch, "tines_nokey", conn_type="tines", host="t.tines.com")
    with pytest.raises(
        InvalidFieldError, match="password: the Tines connection 'tines_nokey' has no API key"
    ):
        _ = TinesHook("tines_nokey").settings


# ---- identifiers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action_id", ["1/../2", "0", 0, -3, True, 1.5, "12a", "", None])
def test_bad_tines_action_ids_send_no_request(fluents_tines_sandbox, action_id):
    hook = TinesHook()
    with pytest.raises(InvalidFieldError, match="action_id: must be a positive integer"):
        hook.get_action(action_id)
    with pytest.raises(InvalidFieldError):
        hook.update_action(action_id, name="x")
    assert fluents_tines_sandbox.state.journal() == []


@pytest.mark.parametrize("phone", ["14155550101", "+1 415 555 0101", "+0123", "", None])
def test_bad_phone_numbers_send_no_request(fluents_tines_sandbox, phone):
    with pytest.raises(InvalidFieldError, match=r"E\.164"):
        FluentsHook().get_number(phone)
    assert fluents_tines_sandbox.state.journal() == []


def test_hook_refuses_a_body_that_breaks_an_api_rule(fluents_tines_sandbox):
    with pytest.raises(InvalidFieldError, match="example_context: is required"):
        FluentsHook().update_number(NUMBER, label="x")
    with pytest.raises(InvalidFieldError, match="links_to_sources: is mutually exclusive with source_ids"):
        TinesHook().update_action(90002, source_ids=[90001], links_to_sources=[{"source_id": 90001}])
    assert fluents_tines_sandbox.state.journal() == []


# ---- compatibility and connection tests --------------------------------------------------------------


def test_http_operator_works_with_a_fluents_connection(fluents_tines_sandbox):
    from airflow.providers.http.operators.http import HttpOperator

    operator = HttpOperator(
        task_id="raw",
        http_conn_id="fluents_default",
        method="GET",
        endpoint="/v1/numbers",
        data={"phone_number": NUMBER},
    )
    assert json.loads(operator.execute(context={}))["number"] == NUMBER
    assert fluents_tines_sandbox.state.journal()[0]["query"] == "phone_number=%2B14155550101"


def test_test_connection_makes_one_cheap_authenticated_get(fluents_tines_sandbox, monkeypatch):
    assert FluentsHook().test_connection()[0] is True
    assert TinesHook().test_connection()[0] is True
    calls = [(e["method"], e["path"], e["query"]) for e in fluents_tines_sandbox.state.journal()]
    assert calls == [("GET", "/v1/actions/list", "page=1&size=1"), ("GET", "/api/v1/info", "")]
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    _conn(monkeypatch, "tines_bad", **{**env, "password": "nope-nope-nope"})
    ok, message = TinesHook("tines_bad").test_connection()
    assert not ok and "401" in message and "nope-nope-nope" not in message


def test_a_given_retry_policy_wins_over_the_extras_and_arguments_over_both(
    fluents_tines_sandbox, monkeypatch
):
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    _conn(monkeypatch, "tines_extras", **{**env, "extra": {"max_attempts": 5, "max_retry_wait": 300}})
    policy = TinesHook.from_hook_params(
        "tines_extras", {"retry_policy": {"max_attempts": 1}}
    ).settings.retry_policy
    assert (policy.max_attempts, policy.max_retry_wait) == (1, 300)  # the extra fills what the dict leaves
    policy = TinesHook("tines_extras", retry_policy=RetryPolicy(max_attempts=2)).settings.retry_policy
    assert (policy.max_attempts, policy.max_retry_wait) == (2, 120)  # a whole policy sets every field
    policy = TinesHook("tines_extras", max_attempts=3, retry_policy={"max_attempts": 1}).settings.retry_policy
    assert policy.max_attempts == 3


# ---- the request budget ----------------------------------------------------------------------------


def test_the_budget_keeps_a_burst_inside_the_servers_rate_limit(fluents_tines_sandbox, monkeypatch):
    # A two-second window stands in for Tines' minute: 12 reads at 5 per window take three windows, no 429.
    fluents_tines_sandbox.state.configure(rate_limit={"enabled": True, "limit": 5, "window": 2})
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    _conn(monkeypatch, "tines_paced", **{**env, "extra": {"requests_per_minute": 5, "rate_limit_window": 2}})
    hook = TinesHook("tines_paced", max_attempts=1)
    started = time.monotonic()
    for _ in range(12):
        hook.get_action(90001)
    assert time.monotonic() - started >= 4.0  # slots at 0, ~2.04 and ~4.08 s
    assert len(fluents_tines_sandbox.state.journal(method="GET")) == 12
    # Without the budget (as before it, in a fresh process), the same burst is refused by the server at once.
    forget_budgets()
    _conn(monkeypatch, "tines_unpaced", **{**env, "extra": {"requests_per_minute": 1000}})
    with pytest.raises(ApiRequestError) as err:
        for _ in range(12):
            TinesHook("tines_unpaced", max_attempts=1).get_action(90001)
    assert err.value.http_status == 429


def test_a_429_holds_back_the_next_request_of_every_hook_on_the_key(fluents_tines_sandbox):
    fluents_tines_sandbox.state.add_fault(method="GET", path="/api/v1/actions/*", status=429, retry_after="1")
    with pytest.raises(ApiRequestError):
        TinesHook(max_attempts=1).get_action(90001)
    started = time.monotonic()
    TinesHook().get_action(90001)  # another hook, same host and key: it waits out the Retry-After too
    assert time.monotonic() - started >= 0.8


def test_a_bad_budget_setting_is_named(fluents_tines_sandbox, monkeypatch):
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    _conn(monkeypatch, "tines_bad_budget", **{**env, "extra": {"requests_per_minute": 0}})
    with pytest.raises(InvalidFieldError, match=r"^extra\.requests_per_minute: must be an integer >= 1"):
        _ = TinesHook("tines_bad_budget").settings
    assert fluents_tines_sandbox.state.journal() == []


def test_the_visibility_lag_extra_defaults_and_is_checked(fluents_tines_sandbox, monkeypatch):
    env = json.loads(fluents_tines_sandbox.connection_env()["AIRFLOW_CONN_TINES_DEFAULT"])
    _conn(monkeypatch, "tines_lag_null", **{**env, "extra": {"visibility_lag": None}})
    assert TinesHook("tines_lag_null").settings.visibility_lag == 10.0
    _conn(monkeypatch, "tines_lag", **{**env, "extra": {"visibility_lag": "2.5"}})
    assert TinesHook("tines_lag").settings.visibility_lag == 2.5
    _conn(monkeypatch, "tines_lag_bad", **{**env, "extra": {"visibility_lag": -1}})
    with pytest.raises(InvalidFieldError, match=r"^extra\.visibility_lag: must be"):
        _ = TinesHook("tines_lag_bad").settings
