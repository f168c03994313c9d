"""
What the Fluents and Tines hooks share: connection settings, auth, the HTTP session, the retry
policy, error mapping, and the single asynchronous GET that triggers poll with.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from airflow.providers.http.hooks.http import HttpHook
from requests.auth import AuthBase

from airflow_provider_fluents_tines import __version__
from airflow_provider_fluents_tines.exceptions import (
    ApiClientError,
    ApiRequestError,
    InvalidFieldError,
    extract_api_message,
)
from airflow_provider_fluents_tines.hooks.budget import DEFAULT_WINDOW, RequestBudget, budget_for
from airflow_provider_fluents_tines.hooks.settings import (
    DEFAULT_TIMEOUT,
    NUMBER_SETTINGS,
    RetryPolicy,
    as_bool,
    as_number,
    as_policy,
    check_hook_params,
    parse_retry_after,
)
from airflow_provider_fluents_tines.objects import ListPage, ObjectKind, Request
from airflow_provider_fluents_tines.redaction import redact, sensitive_values, shown_value, without_userinfo

if TYPE_CHECKING:
    import aiohttp
    from airflow.sdk import Connection
    from typing_extensions import Self

USER_AGENT = f"airflow-provider-fluents-tines/{__version__}"

# After a wait for the request budget, an attempt starts only with at least this long left (or half
# of what is left, for short deadlines): one with microseconds left would only time out.
_MIN_ATTEMPT_SECONDS = 0.5

_TRANSIENT_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


#: Seconds a write may take to show in reads when the connection does not say (``visibility_lag``):
#: neither API documents one (inferred; README "Connections").
DEFAULT_VISIBILITY_LAG = 10.0


@dataclass(frozen=True)
class ApiSettings:
    """Everything a request needs from a connection, resolved once."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float
    retry_policy: RetryPolicy
    #: this process's request budget for the host and key, or None where the API documents no limit.
    budget: RequestBudget | None = field(default=None, compare=False)
    #: seconds a write may take to show in reads (the ``visibility_lag`` extra): how long a rollback
    #: waits before it trusts a read after a write.
    visibility_lag: float = DEFAULT_VISIBILITY_LAG


class BearerAuth(AuthBase):
    """``Authorization: Bearer <key>``, with a repr that never shows the key."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class BaseServiceHook(HttpHook):
    """
    Base of the Fluents and Tines hooks: one ``requests.Session`` per hook, bearer auth, retries.

    The connection is read once per hook. Connection extras are settings, never HTTP headers:
    ``timeout`` (seconds per request), ``max_attempts``, ``max_retry_wait`` (seconds) and
    ``allow_insecure_http`` (plain ``http://`` to a host that is not loopback).

    :param conn_id: the Airflow connection id.
    :param timeout: seconds per request; overrides the ``timeout`` extra.
    :param max_attempts: attempts per call, the first included; overrides the extra.
    :param max_retry_wait: seconds a call may spend retrying; overrides the extra.
    :param retry_policy: the policy (backoff included), a :class:`RetryPolicy` or a dict of some of
        its fields; the fields it sets win over the extras, the two arguments above over it.
    """

    service_name: ClassVar[str]
    default_host = ""
    #: requests per minute per (host, key) the API documents, the default of ``requests_per_minute``.
    default_requests_per_minute: ClassVar[int | None] = None
    #: path and query of one cheap authenticated GET, for ``test_connection``.
    connection_test_request: ClassVar[tuple[str, dict[str, Any]]]

    def __init__(
        self,
        conn_id: str,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        max_retry_wait: float | None = None,
        retry_policy: RetryPolicy | Mapping[str, Any] | None = None,
        **http_hook_kwargs: Any,
    ) -> None:
        # HttpOperator builds hooks with method/auth_type/tcp_keep_alive keyword arguments; accept them.
        http_hook_kwargs.setdefault("method", "GET")
        super().__init__(http_conn_id=conn_id, **http_hook_kwargs)
        self.conn_id = conn_id
        given = {"timeout": timeout, "max_attempts": max_attempts, "max_retry_wait": max_retry_wait}
        # Checked now, naming the argument: a bad setting fails before any request.
        self._overrides = {
            name: None if value is None else as_number(value, name, minimum=minimum, integer=integer)
            for name, value in given.items()
            for minimum, integer in [NUMBER_SETTINGS[name]]
        }
        self._retry_policy, self._policy_fields_given = (
            (RetryPolicy(), frozenset()) if retry_policy is None else as_policy(retry_policy, "retry_policy")
        )

    @classmethod
    def from_hook_params(cls, conn_id: str, hook_params: Mapping[str, Any] | None) -> Self:
        """
        The hook a task builds from its ``hook_params`` (any of ``timeout``, ``max_attempts``,
        ``max_retry_wait`` and ``retry_policy``, a dict of its fields or a :class:`RetryPolicy`), each
        checked now and named in errors as ``hook_params.<name>``.
        """
        return cls(conn_id, **check_hook_params(hook_params))

    # ---- settings -------------------------------------------------------------------------------

    def _settings_from(self, conn: Connection, extra: Mapping[str, Any]) -> ApiSettings:
        if not conn.password:
            raise InvalidFieldError(
                "password", f"the {self.service_name} connection {self.conn_id!r} has no API key"
            )
        if conn.password != conn.password.strip() or not conn.password.isprintable():
            # A pasted key with a newline would fail in the HTTP layer, which echoes the header.
            raise InvalidFieldError(
                "password",
                f"the API key of the {self.service_name} connection {self.conn_id!r} has spaces or "
                "control characters around or in it (a paste error?)",
            )
        allow_insecure = self._extra(extra, "allow_insecure_http")
        base_url = self._base_url(
            conn,
            allow_insecure=allow_insecure is not None
            and as_bool(allow_insecure, "extra.allow_insecure_http"),
        )
        # An argument (or hook_params) wins over what retry_policy sets, which wins over the extra.
        options: dict[str, float | None] = {}
        for name, (minimum, integer) in NUMBER_SETTINGS.items():
            given = self._overrides[name] is not None or name in self._policy_fields_given
            raw = None if given else self._extra(extra, name)
            options[name] = (
                self._overrides[name]
                if raw is None
                else as_number(raw, f"extra.{name}", minimum=minimum, integer=integer)
            )
        policy = self._retry_policy
        if options["max_attempts"] is not None:
            policy = replace(policy, max_attempts=int(options["max_attempts"]))
        if options["max_retry_wait"] is not None:
            policy = replace(policy, max_retry_wait=options["max_retry_wait"])
        timeout = DEFAULT_TIMEOUT if options["timeout"] is None else options["timeout"]
        raw_lag = self._extra(extra, "visibility_lag")
        return ApiSettings(
            base_url=base_url,
            api_key=conn.password,
            timeout=timeout,
            retry_policy=policy,
            budget=self._budget_from(base_url, conn.password, extra),
            visibility_lag=DEFAULT_VISIBILITY_LAG
            if raw_lag is None
            else as_number(raw_lag, "extra.visibility_lag", minimum=0.0),
        )

    def _budget_from(self, base_url: str, api_key: str, extra: Mapping[str, Any]) -> RequestBudget | None:
        """The process's budget for this host and key: ``requests_per_minute`` (null: the API's own limit)."""
        raw = self._extra(extra, "requests_per_minute")
        limit = (
            self.default_requests_per_minute
            if raw is None
            else int(as_number(raw, "extra.requests_per_minute", minimum=1, integer=True))
        )
        if limit is None:
            return None
        raw_window = self._extra(extra, "rate_limit_window")
        window = (
            DEFAULT_WINDOW
            if raw_window is None
            else as_number(raw_window, "extra.rate_limit_window", minimum=0.001)
        )
        return budget_for(base_url, api_key, limit, window)

    def _budget_error(self, settings: ApiSettings, method: str, shown: str) -> ApiRequestError:
        budget = settings.budget
        assert budget is not None
        message = (
            f"the request budget ({budget.limit} per {budget.window:g} s for this host and key) "
            "has no free slot before the call's deadline"
        )
        return self._error(settings, method, shown, None, message, True)

    def _min_attempt(self, settings: ApiSettings, left: float) -> float:
        """The least time worth starting an attempt with, after a budget wait."""
        return min(_MIN_ATTEMPT_SECONDS, settings.timeout, left / 2)

    def _extra(self, extra: Mapping[str, Any], name: str) -> Any:
        """
        A settings extra, or None (its default) when it is absent, null or blank.

        Airflow's connection form saves every field the user left untouched as null; older forms
        stored fields as ``extra__<conn_type>__<name>``, which is read too.
        """
        value = extra.get(name)
        if value is None:
            value = extra.get(f"extra__{self.conn_type}__{name}")
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value

    def _base_url(self, conn: Connection, *, allow_insecure: bool) -> str:
        raw = (conn.host or "").strip() or self.default_host
        if not raw:
            raise InvalidFieldError(
                "host", f"the {self.service_name} connection {self.conn_id!r} needs a host (the API's domain)"
            )
        if "://" not in raw:
            raw = f"{conn.schema or 'https'}://{raw}"
        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError:  # a bad port or IPv6 literal
            parts, port = urlsplit(""), None
        scheme = parts.scheme.lower()
        # Any "@" may start credentials: a password holding "/" or "?" moves it out of the netloc.
        if scheme not in ("http", "https") or not parts.hostname or "@" in raw:
            # Never echo what was given: a pasted URL may carry user:password@.
            given = (
                "a URL with '@' in it (not shown: it may hold credentials)"
                if "@" in raw
                else shown_value(raw)
            )
            raise InvalidFieldError(
                "host", f"must be a domain or an http(s) URL without credentials, got {given}"
            )
        if scheme == "http" and not _is_loopback(parts.hostname) and not allow_insecure:
            raise InvalidFieldError(
                "host",
                "must use https:// (plain http is accepted only for loopback hosts, "
                "or with the allow_insecure_http extra set to true)",
            )
        netloc = parts.netloc
        if conn.port and port is None:
            netloc = f"{netloc}:{conn.port}"
        return self._clean_base_path(f"{scheme}://{netloc}{parts.path}".rstrip("/"))

    def _clean_base_path(self, base_url: str) -> str:
        """Hook for a service whose users paste the API prefix into the host."""
        return base_url

    @cached_property
    def settings(self) -> ApiSettings:
        """The connection's settings, read once per hook; registers the API key with the secrets masker."""
        from airflow_provider_fluents_tines.version_compat import mask_secret

        conn = self.get_connection(self.conn_id)
        extra = conn.extra_dejson
        settings = self._settings_from(conn, extra if isinstance(extra, Mapping) else {})
        mask_secret(settings.api_key)
        return settings

    # ---- synchronous requests -------------------------------------------------------------------

    @cached_property
    def _watchdog(self) -> _Watchdog:
        return _Watchdog()

    @cached_property
    def session(self) -> requests.Session:
        """The hook's one session: connections are kept alive and reused across calls."""
        session = requests.Session()
        session.auth = BearerAuth(self.settings.api_key)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        if self.keep_alive_adapter is not None:
            session.mount("http://", self.keep_alive_adapter)
            session.mount("https://", self.keep_alive_adapter)
        return session

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """
        Return the hook's session, for ``HttpHook.run`` and so ``HttpOperator``.

        Unlike ``HttpHook.get_conn`` this builds nothing per call and turns no extra into a header;
        per-call ``headers`` travel on the request itself.
        """
        self._hand_settings_to_http_hook(extra_options)
        return self.session

    def _hand_settings_to_http_hook(self, extra_options: dict[str, Any] | None) -> None:
        """
        The one adapter to ``HttpHook``'s own state, for ``HttpHook.run`` (so ``HttpOperator``):
        it builds URLs from ``base_url`` (``url_from_endpoint`` reloads the connection unless
        ``_base_url_initialized``) and passes ``merged_extra`` to ``run_and_check`` as request
        options. Nothing else in this provider reads or writes these attributes; the HttpOperator
        test in ``tests/test_hooks.py`` fails if a new http provider renames them.
        """
        self.base_url = self.settings.base_url
        self._base_url_initialized = True
        self.merged_extra = {"timeout": self.settings.timeout, **(extra_options or {})}

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """
        Send one API call under the retry policy and return its JSON object.

        Every method of both APIs that this provider calls is a read or an idempotent update, so
        re-sending after a timeout or a 5xx cannot duplicate an effect. Each attempt must receive its
        whole response within the ``timeout`` setting; the whole call ends within ``max_retry_wait``
        plus one ``timeout``.

        :param deadline: an epoch second the call must end by (a sensor's own timeout): attempts are
            cut to it, and no retry starts once its wait would reach it.
        :raises ApiClientError: on a 4xx that retrying cannot fix (fails the task without retries).
        :raises ApiRequestError: when transient failures outlast the retry policy or the deadline,
            or when a success answer is not a JSON object.
        """
        settings = self.settings
        policy = settings.retry_policy
        # A server may echo the request in its errors: the body's secrets are scrubbed like the key.
        secrets = tuple(sensitive_values(json_body))
        started = time.time()
        ends_by = started + policy.max_retry_wait + settings.timeout
        if deadline is not None:
            ends_by = min(ends_by, deadline)
        failures = 0
        while True:
            left = ends_by - time.time()
            if left <= 0:
                raise self._error(
                    settings, method, shown_path(path, params), None, "no time left before the deadline", True
                )
            if settings.budget is not None:
                if not settings.budget.acquire(left - self._min_attempt(settings, left)):
                    raise self._budget_error(settings, method, shown_path(path, params))
                left = ends_by - time.time()
                if left <= 0:
                    raise self._error(
                        settings,
                        method,
                        shown_path(path, params),
                        None,
                        "no time left before the deadline",
                        True,
                    )
            try:
                return self._send_once(method, path, params, json_body, min(settings.timeout, left), secrets)
            except ApiRequestError as err:
                if err.http_status == 429 and err.retry_after and settings.budget is not None:
                    settings.budget.hold_off(err.retry_after)  # every later request waits, not only this one
                failures += 1
                if not err.retryable or failures >= policy.max_attempts:
                    raise
                wait = policy.delay(failures, err.retry_after)
                resume = time.time() + wait
                if resume - started >= policy.max_retry_wait or resume >= ends_by:
                    raise
                self.log.warning(
                    "%s; retrying in %.1f s (attempt %d of %d)", err, wait, failures + 1, policy.max_attempts
                )
                time.sleep(wait)

    def _send_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        timeout: float,
        secrets: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """One attempt, which ends within ``timeout`` (plus a read's slack) whatever the server does."""
        settings = self.settings
        shown = shown_path(path, params)
        ends_by = time.monotonic() + timeout
        try:
            response = self.session.request(
                method,
                settings.base_url + path,
                params=params,
                json=json_body,
                timeout=(timeout, timeout),
                stream=True,
                # A redirected PUT would be re-sent as a GET and look like a successful update.
                allow_redirects=False,
            )
        except _TRANSIENT_TRANSPORT_ERRORS as err:
            raise self._error(settings, method, shown, None, f"{type(err).__name__}: {err}", True) from err
        try:
            body = _read_body(response, ends_by, self._watchdog)
        except _BodyTimeout:
            response.close()
            message = f"the response did not complete within {timeout:.3g} s"
            raise self._error(settings, method, shown, response.status_code, message, True) from None
        except (*_TRANSIENT_TRANSPORT_ERRORS, OSError, urllib3.exceptions.HTTPError) as err:
            response.close()
            message = f"the response broke off: {type(err).__name__}: {err}"
            raise self._error(settings, method, shown, response.status_code, message, True) from err
        text = _decoded(body, response.encoding)
        return self._parse(settings, method, shown, response.status_code, response.headers, text, secrets)

    # ---- one place for status codes and bodies ---------------------------------------------------

    def _parse(
        self,
        settings: ApiSettings,
        method: str,
        shown: str,
        status: int,
        headers: Mapping[str, str],
        text: str,
        secrets: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        if 200 <= status < 300:
            try:
                parsed = json.loads(text)
            except ValueError:
                if not text.strip():
                    message = f"an empty HTTP {status} answer where a JSON object was due"
                    raise self._error(settings, method, shown, status, message, False) from None
                # A proxy page or a cut-off body: worth another try, and the updates are idempotent.
                message = "malformed JSON in a success response"
                raise self._error(settings, method, shown, status, message, True) from None
            if not isinstance(parsed, dict):
                # Not a transient fault: this is not the endpoint the provider was written for.
                echoed = json.dumps(redact(parsed))
                message = f"a JSON {type(parsed).__name__} where a JSON object was due: {echoed}"
                raise self._error(settings, method, shown, status, message, False, None, secrets)
            return parsed
        if 300 <= status < 400:
            # Redirects are not followed (a PUT would come back as a GET): the URL is not the API's.
            location = shown_value(without_userinfo(headers.get("Location", "?")))
            message = f"a redirect (HTTP {status}) to {location}: not followed"
            raise self._error(settings, method, shown, status, message, False, None, secrets)
        retry_after = parse_retry_after(headers.get("Retry-After")) if status in (429, 503) else None
        transient = RetryPolicy.is_transient(status)
        raise self._error(settings, method, shown, status, text, transient, retry_after, secrets)

    def _error(
        self,
        settings: ApiSettings,
        method: str,
        shown: str,
        status: int | None,
        message: str,
        retryable: bool,
        retry_after: float | None = None,
        secrets: tuple[str, ...] = (),
    ) -> ApiRequestError:
        """The provider's error for a failed call; ``message`` (a server's body, too) is scrubbed and cut."""
        client_error = status is not None and 400 <= status < 500 and not retryable
        error_class = ApiClientError if client_error else ApiRequestError
        return error_class(
            service=self.service_name,
            method=method,
            path=shown,
            http_status=status,
            api_message=extract_api_message(message, secrets=[settings.api_key, *secrets]),
            retryable=retryable,
            retry_after=retry_after,
        )

    # ---- objects: what operators, sensors and triggers read and write ----------------------------

    def _own(self, kind: ObjectKind) -> ObjectKind:
        if not isinstance(self, kind.hook_class()):
            raise TypeError(f"{type(self).__name__} does not serve {kind.service} {kind.noun}s ({kind.key})")
        return kind

    def send(self, request: Request, *, json_body: Any = None, deadline: float | None = None) -> Any:
        """Send one :class:`Request` an object kind describes (see :meth:`request`)."""
        return self.request(
            request.method, request.path, params=request.params, json_body=json_body, deadline=deadline
        )

    def get_object(
        self, kind: ObjectKind, object_id: Any, *, deadline: float | None = None
    ) -> dict[str, Any]:
        """Read one object of ``kind``; ``deadline`` (epoch seconds) bounds the call with its retries."""
        return self.send(self._own(kind).read_request(object_id), deadline=deadline)

    def update_object(self, kind: ObjectKind, object_id: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Send a partial update of one object after checking ``fields`` against the API's rules."""
        self._own(kind).check_update(fields)
        return self.send(kind.update_request(object_id), json_body=dict(fields))

    # ---- asynchronous reads, for triggers -------------------------------------------------------

    @asynccontextmanager
    async def async_session(self, settings: ApiSettings) -> AsyncIterator[aiohttp.ClientSession]:
        """One aiohttp session for a trigger's whole wait (keep-alive across polls)."""
        import aiohttp

        headers = {
            "Authorization": f"Bearer {settings.api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        timeout = aiohttp.ClientTimeout(total=settings.timeout)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            yield session

    async def aget_object(
        self,
        session: aiohttp.ClientSession,
        settings: ApiSettings,
        kind: ObjectKind,
        object_id: Any,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """
        Read one object with a single GET, no retries: the trigger's loop paces the polls.

        :param timeout: seconds for the whole response, at most the ``timeout`` setting (a trigger
            cuts it to its own deadline).
        :raises ApiRequestError: as the synchronous path does, with ``retry_after`` when given.
        """
        return await self.aread(session, settings, self._own(kind).read_request(object_id), timeout=timeout)

    async def alist_page(
        self,
        session: aiohttp.ClientSession,
        settings: ApiSettings,
        kind: ObjectKind,
        scope: Any,
        page: int,
        *,
        timeout: float | None = None,
    ) -> ListPage:
        """
        Read one page of ``kind``'s list endpoint (``scope``: a Tines story, or None for all) with a
        single GET, no retries.

        :raises ApiRequestError: as :meth:`aget_object`; an answer that is not a list page is a
            non-retryable one.
        """
        request = self._own(kind).list_request(scope, page)
        if request is None:
            raise TypeError(f"{kind.service} {kind.noun}s have no list endpoint for scope {scope!r}")
        answer = await self.aread(session, settings, request, timeout=timeout)
        try:
            return kind.list_page(answer, page)
        except ValueError as err:
            shown = shown_path(request.path, request.params)
            raise self._error(settings, "GET", shown, 200, f"not a list page: {err}", False) from err

    async def aread(
        self,
        session: aiohttp.ClientSession,
        settings: ApiSettings,
        request: Request,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """
        One asynchronous GET, no retries, through this process's request budget for the host and
        key; a ``429`` with ``Retry-After`` holds back every later request of the budget.
        """
        _, path, params = request
        shown = shown_path(path, params)
        seconds = settings.timeout if timeout is None else min(settings.timeout, timeout)
        # Polls draw on the same budget as every other request of this process for the host and key.
        if settings.budget is not None:
            ends_by = time.time() + seconds
            if not await settings.budget.aacquire(seconds - self._min_attempt(settings, seconds)):
                raise self._budget_error(settings, "GET", shown)
            seconds = ends_by - time.time()
            if seconds <= 0:
                raise self._error(settings, "GET", shown, None, "no time left before the deadline", True)
        try:
            return await self._aget_once(session, settings, path, params, shown, seconds)
        except ApiRequestError as err:
            if err.http_status == 429 and err.retry_after and settings.budget is not None:
                settings.budget.hold_off(err.retry_after)
            raise

    async def _aget_once(
        self,
        session: aiohttp.ClientSession,
        settings: ApiSettings,
        path: str,
        params: dict[str, Any],
        shown: str,
        seconds: float,
    ) -> dict[str, Any]:
        import asyncio

        import aiohttp

        try:
            async with session.get(
                settings.base_url + path,
                params=params,
                timeout=aiohttp.ClientTimeout(total=seconds),
                allow_redirects=False,
            ) as response:
                text = _decoded(await response.read(), response.charset)
                return self._parse(settings, "GET", shown, response.status, response.headers, text)
        except asyncio.TimeoutError as err:
            message = f"the response did not complete within {seconds:.3g} s"
            raise self._error(settings, "GET", shown, None, message, True) from err
        except aiohttp.ClientError as err:
            raise self._error(settings, "GET", shown, None, f"{type(err).__name__}: {err}", True) from err

    # ---- connection form on Airflow 3.0 and 3.1 (3.2+ reads it from provider info) ---------------
    # Those versions look for these methods in the hook class's own __dict__: each service hook
    # re-binds them in its own body (an inherited method is not seen).

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form's field behaviour, from ``get_provider_info()`` (read by Airflow 3.0 and 3.1 only)."""
        from airflow_provider_fluents_tines.hooks._connection_form import ui_field_behaviour

        return ui_field_behaviour(cls.conn_type)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields, from ``get_provider_info()`` (read by Airflow 3.0 and 3.1 only)."""
        from airflow_provider_fluents_tines.hooks._connection_form import connection_form_widgets

        return connection_form_widgets(cls.conn_type)

    # ---- connection test ------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated GET; returns ``(ok, message)`` as the Airflow UI and CLI expect."""
        path, params = self.connection_test_request
        try:
            self.request("GET", path, params=params)
        except Exception as err:
            return False, str(err)
        return True, f"Connected to the {self.service_name} API at {self.settings.base_url}"


class _BodyTimeout(Exception):
    """The body did not arrive in full before the attempt's deadline."""


_READ_SIZE = 64 * 1024


def _read_body(response: requests.Response, ends_by: float, watchdog: _Watchdog) -> bytes:
    """
    Read a streamed response's whole body by ``ends_by`` (monotonic seconds).

    requests' timeout bounds each socket read, so a server trickling a byte at a time could hold a
    call for minutes; here every read's timeout is cut to the time left, and reads return what one
    receive brings (``read1``). Some reads loop inside the HTTP stack (a chunk-size line, a gzip
    stream of empty blocks): the watchdog shuts the socket down at the deadline for those.
    """
    raw = response.raw
    # An answer that closes its connection (HTTP/1.0, Connection: close) has its socket detached by
    # http.client: such a body is bounded by each read's timeout only.
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    sock = sock if isinstance(sock, socket.socket) else None
    read = getattr(raw, "read1", None) or raw.read  # read1: urllib3 2.1 and newer
    chunks: list[bytes] = []
    if sock is not None:
        watchdog.arm(sock, ends_by)
    try:
        while True:
            left = ends_by - time.monotonic()
            if left <= 0:
                raise _BodyTimeout
            if sock is not None:
                sock.settimeout(left)
            try:
                chunk = read(_READ_SIZE, decode_content=True)
            except (TimeoutError, urllib3.exceptions.ReadTimeoutError) as err:
                raise _BodyTimeout from err
            except (OSError, urllib3.exceptions.HTTPError, requests.RequestException):
                if time.monotonic() >= ends_by:  # the watchdog cut it
                    raise _BodyTimeout from None
                raise
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        watchdog.disarm()


class _Watchdog:
    """
    One daemon thread per hook that shuts an attempt's socket down when the attempt's deadline
    passes, so that no read looping inside the HTTP stack outlives it. Armed and disarmed once per
    attempt; the thread starts when armed and ends after a while with nothing armed, so a long-lived
    process that makes many hooks (an api-server testing connections) keeps no idle threads.
    """

    IDLE_SECONDS = 30.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: tuple[socket.socket, float] | None = None
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, ends_by: float) -> None:
        with self._cond:
            self._armed = (sock, ends_by)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="fluents-tines-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._armed = None
            self._cond.notify()  # the thread is waiting for the deadline: let it start its idle wait

    def _watch(self) -> None:
        with self._cond:
            while True:
                if self._armed is None:
                    self._cond.wait(self.IDLE_SECONDS)
                    if self._armed is None:
                        self._thread = None  # arm() starts another one when needed
                        return
                    continue
                sock, ends_by = self._armed
                left = ends_by - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._armed = None
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _decoded(body: bytes, charset: str | None) -> str:
    """A body as text: its declared charset when Python knows it, else UTF-8 (JSON's own)."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def shown_path(path: str, params: Mapping[str, Any] | None) -> str:
    """A request's path with its query, as errors and logs show it."""
    return f"{path}?{urlencode(params)}" if params else path
