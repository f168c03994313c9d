"""
What the hooks make of hostile or broken answers: bodies that are not objects, bodies that trickle,
servers that echo secrets or control characters. Real servers on loopback only.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from airflow_provider_fluents_tines.exceptions import ApiClientError, ApiRequestError, InvalidFieldError
from airflow_provider_fluents_tines.hooks.fluents import FluentsHook
from airflow_provider_fluents_tines.hooks.tines import TinesHook
from airflow_provider_fluents_tines.objects.tines import TINES_ACTION


def _conn(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def _tines_at(monkeypatch, url: str, key: str = "tines-key-0123456789") -> None:
    _conn(monkeypatch, "tines_default", conn_type="tines", host=url, password=key)


# ---- a success answer that is not a JSON object -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "shown"),
    [
        ("null", 200, "a JSON NoneType where a JSON object was due: null"),
        ("[]", 200, "a JSON list where a JSON object was due: []"),
        ('"s"', 200, 'a JSON str where a JSON object was due: "s"'),
        ("42", 200, "a JSON int where a JSON object was due: 42"),
        ("", 200, "an empty HTTP 200 answer where a JSON object was due"),
        ("", 204, "an empty HTTP 204 answer where a JSON object was due"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_success_that_is_not_an_object_is_an_api_error_naming_it(
    httpserver, monkeypatch, body, status, shown, method
):
    _tines_at(monkeypatch, httpserver.url_for("/"))
    httpserver.expect_request("/api/v1/actions/7", method=method).respond_with_data(
        body, status=status, content_type="application/json"
    )
    hook = TinesHook(max_attempts=3)
    with pytest.raises(ApiRequestError) as err:
        hook.get_action(7) if method == "GET" else hook.update_action(7, disabled=True)
    assert not isinstance(err.value, ApiClientError) and err.value.retryable is False
    assert err.value.http_status == status and shown in str(err.value)
    assert len(httpserver.log) == 1  # a contract mismatch is not retried


# ---- time: a deadline for the whole response ----------------------------------------------------------


class TrickleServer:
    """Answers every request with headers at once, then one body byte every ``interval`` seconds."""

    def __init__(self, interval: float = 0.3, length: int = 200) -> None:
        self.interval = interval
        self.length = length
        self.requests = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                self.requests += 1
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {self.length}\r\n\r\n"
                conn.sendall(head.encode())
                for _ in range(self.length):  # bounded: length bytes at most
                    if self._stop.wait(self.interval):
                        return
                    conn.sendall(b" ")
            except OSError:
                return  # the client gave up and closed: what the test wants

    def __enter__(self) -> TrickleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def trickle() -> Iterator[TrickleServer]:
    with TrickleServer() as server:
        yield server


def test_timeout_bounds_the_whole_response_of_an_attempt(trickle, monkeypatch):
    _tines_at(monkeypatch, trickle.url)
    started = time.monotonic()
    with pytest.raises(ApiRequestError, match="did not complete within 1 s") as err:
        TinesHook(timeout=1, max_attempts=1).get_action(7)
    elapsed = time.monotonic() - started
    # Before: requests' timeout applied to each socket read, so this call took 60 s (200 bytes).
    assert elapsed < 2.0, f"one attempt took {elapsed:.1f} s"
    assert err.value.retryable and trickle.requests == 1


def test_retries_and_attempts_end_within_max_retry_wait_plus_one_timeout(trickle, monkeypatch):
    _tines_at(monkeypatch, trickle.url)
    started = time.monotonic()
    with pytest.raises(ApiRequestError, match="did not complete"):
        TinesHook(timeout=1, max_attempts=10, max_retry_wait=2).get_action(7)
    elapsed = time.monotonic() - started
    assert elapsed < 2 + 1 + 1, f"the call took {elapsed:.1f} s"
    assert trickle.requests >= 2  # it did retry within the budget


def test_a_deadline_cuts_attempts_and_stops_retries(trickle, monkeypatch):
    _tines_at(monkeypatch, trickle.url)
    started = time.monotonic()
    with pytest.raises(ApiRequestError):
        TinesHook(timeout=30, max_attempts=10, max_retry_wait=120).get_object(
            TINES_ACTION, 7, deadline=time.time() + 1.5
        )
    assert time.monotonic() - started < 2.5


# ---- secrets and what servers echo ---------------------------------------------------------------------


def test_an_echoed_key_is_scrubbed_before_the_message_is_cut(httpserver, monkeypatch):
    key = "sk_live_" + "k" * 24
    _tines_at(monkeypatch, httpserver.url_for("/"), key)
    # The key starts at character 490 of the message: a cut at 500 would keep its first 10 characters.
    httpserver.expect_request("/api/v1/actions/7").respond_with_data("x" * 490 + key, status=400)
    with pytest.raises(ApiClientError) as err:
        TinesHook().get_action(7)
    assert key[:8] not in str(err.value) and "x***" in str(err.value)


@pytest.mark.parametrize(
    "host",
    [
        "https://admin:s3cr3t-pass@tenant.tines.com",
        "admin:s3cr3t-pass@tenant.tines.com",
        "https://:s3cr3t-pass@x",
    ],
)
def test_credentials_in_a_host_are_never_echoed(monkeypatch, caplog, host):
    _conn(monkeypatch, "tines_cred", conn_type="tines", host=host, password="k" * 12)
    hook = TinesHook("tines_cred")
    with pytest.raises(InvalidFieldError) as err:
        _ = hook.settings
    assert "s3cr3t-pass" not in str(err.value) and "not shown: it may hold credentials" in str(err.value)
    ok, message = TinesHook("tines_cred").test_connection()
    assert not ok and "s3cr3t-pass" not in message and "without credentials" in message
    assert "s3cr3t-pass" not in caplog.text


def test_a_bad_port_is_an_invalid_field_not_a_crash(monkeypatch):
    _conn(
        monkeypatch,
        "tines_port",
        conn_type="tines",
        host="https://tenant.tines.com:notaport",
        password="k" * 12,
    )
    with pytest.raises(InvalidFieldError, match="host: must be a domain"):
        _ = TinesHook("tines_port").settings


def test_control_and_bidi_characters_from_a_server_are_escaped(httpserver, monkeypatch):
    _conn(
        monkeypatch, "fluents_default", conn_type="fluents", host=httpserver.url_for("/"), password="k" * 12
    )
    forged = "refused\n2026-11-23T00:00:00Z [info] all good\u202e\x1b[31m"
    httpserver.expect_request("/v1/numbers").respond_with_json(
        {"message": forged, "error": "Bad Request", "statusCode": 400}, status=400
    )
    with pytest.raises(ApiClientError) as err:
        FluentsHook().get_number("+14155550101")
    message = str(err.value)
    assert "\n" not in message and "\u202e" not in message and "\x1b" not in message
    assert "refused\\n2026-11-23T00:00:00Z [info] all good\\u202e\\x1b[31m" in message


# ---- found by the review of the hardening --------------------------------------------------------------


class ChunkSizeTrickleServer(TrickleServer):
    """A chunked answer whose first chunk-size line never ends: "0" after "0", one every interval."""

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                self.requests += 1
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                for _ in range(self.length):
                    if self._stop.wait(self.interval):
                        return
                    conn.sendall(b"0")
            except OSError:
                return


def test_the_deadline_holds_inside_reads_that_loop_in_the_http_stack(monkeypatch):
    with ChunkSizeTrickleServer() as server:
        _tines_at(monkeypatch, server.url)
        started = time.monotonic()
        with pytest.raises(ApiRequestError):
            TinesHook(timeout=1, max_attempts=1).get_action(7)
        assert time.monotonic() - started < 2.5


def test_a_key_with_control_characters_is_refused_without_echoing_it(monkeypatch):
    _conn(
        monkeypatch,
        "tines_nl",
        conn_type="tines",
        host="https://t.tines.com",
        password="tk_live_ABCDEF123456\n",
    )
    with pytest.raises(InvalidFieldError, match="password: the API key") as err:
        _ = TinesHook("tines_nl").settings
    assert "ABCDEF123456" not in str(err.value)


@pytest.mark.parametrize(
    "host", ["https://admin:s3cr/et@my.tines.com", "https://admin:1234/s3cret@my.tines.com"]
)
def test_credentials_holding_a_slash_are_refused_and_not_echoed(monkeypatch, host):
    _conn(monkeypatch, "tines_slash", conn_type="tines", host=host, password="k" * 12)
    with pytest.raises(InvalidFieldError, match="without credentials") as err:
        _ = TinesHook("tines_slash").settings
    assert "s3cr" not in str(err.value)


def test_a_redirect_is_not_followed_so_a_put_never_becomes_a_get(httpserver, monkeypatch):
    _tines_at(monkeypatch, httpserver.url_for("/"))
    httpserver.expect_request("/api/v1/actions/7", method="PUT").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/api/v1/actions/7")}
    )
    with pytest.raises(ApiRequestError, match="a redirect \\(HTTP 302\\)") as err:
        TinesHook().update_action(7, name="new name")
    assert err.value.retryable is False
    assert [request.method for request, _ in httpserver.log] == ["PUT"]


@pytest.mark.parametrize("extra", [{"timeout": "nan"}, {"max_retry_wait": "inf"}, {"max_attempts": "nan"}])
def test_settings_that_are_not_finite_are_refused(monkeypatch, extra):
    _conn(
        monkeypatch, "tines_nan", conn_type="tines", host="http://127.0.0.1:9", password="k" * 12, extra=extra
    )
    with pytest.raises(InvalidFieldError, match="extra\\."):
        _ = TinesHook("tines_nan").settings


def test_an_unknown_charset_falls_back_to_utf8(httpserver, monkeypatch):
    _tines_at(monkeypatch, httpserver.url_for("/"))
    httpserver.expect_request("/api/v1/actions/7").respond_with_data(
        '{"id": 7}', content_type="application/json; charset=x-unknown"
    )
    assert TinesHook().get_action(7) == {"id": 7}


def test_a_non_object_answer_is_echoed_with_its_secrets_starred(httpserver, monkeypatch):
    _tines_at(monkeypatch, httpserver.url_for("/"))
    httpserver.expect_request("/api/v1/actions/7").respond_with_json(
        [{"options": {"secret": "whsec-LEAK-1234"}}]
    )
    with pytest.raises(ApiRequestError) as err:
        TinesHook().get_action(7)
    assert "whsec-LEAK-1234" not in str(err.value) and '"secret": "***"' in str(err.value)


def test_the_deadline_watchdog_leaves_no_idle_thread(fluents_tines_sandbox, monkeypatch):
    import threading

    from airflow_provider_fluents_tines.hooks import base

    monkeypatch.setattr(base._Watchdog, "IDLE_SECONDS", 0.2)
    hooks = [TinesHook() for _ in range(5)]
    threads = []
    for hook in hooks:
        assert hook.get_action(90001)["id"] == 90001
        threads.append(hook._watchdog._thread)  # started by the call (a keep-alive answer); ends when idle
    assert all(isinstance(thread, threading.Thread) for thread in threads)
    for thread in threads:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in threads)
    assert all(hook._watchdog._thread is None for hook in hooks)
    assert hooks[0].get_action(90001)["id"] == 90001  # armed again after its thread ended
