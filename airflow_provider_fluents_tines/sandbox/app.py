"""
The sandbox's HTTP interface: the Fluents and Tines endpoints this provider uses, answered with the
shapes and codes of the seeds and references, plus an admin API under ``/_sandbox/``.

The admin API's bodies are the pydantic models of ``models.py``: a request that does not fit (a
count that is not a positive integer, two effects for one fault, an unknown knob, a seed without
the seed's shape...) is answered 422 with FastAPI's ``detail`` and changes nothing.

``GET /v1/numbers`` answers the shape the ``fluents_number_shape`` knob names (``embedded`` by
default: the agent and the telephony account connection as objects; ``normalized``: their ids).
``POST /v1/numbers/update`` and ``GET /v1/numbers/list`` always answer normalized numbers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
from dataclasses import asdict
from enum import Enum
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.sandbox.models import ConfigUpdate, FaultSpec, Seed
from airflow_provider_fluents_tines.sandbox.state import SandboxError, SandboxState, retry_after_header

ADMIN_PREFIX = "/_sandbox"
_FLUENTS_PREFIX = "/v1/"
_TINES_PREFIX = "/api/v1/"
_TINES_RATE_LIMITED = "/api/v1/actions"
_FLUENTS_TAGS: list[str | Enum] = ["Fluents API (emulated)"]
_TINES_TAGS: list[str | Enum] = ["Tines API (emulated)"]
_ADMIN_TAGS: list[str | Enum] = ["Sandbox admin"]
_REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}
# Statuses whose answer has no body (RFC 9110): a fault with one is answered without its error body.
_BODILESS = (204, 205, 304)


class DroppedConnection(ConnectionAbortedError):
    """Raised after the status line to make uvicorn close the connection mid-response."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def _api_of(path: str) -> str | None:
    if path.startswith(_TINES_PREFIX):
        return "tines"
    if path.startswith(_FLUENTS_PREFIX):
        return "fluents"
    return None


def error_response(
    api: str, status: int, messages: str | list[str], headers: dict[str, str] | None = None
) -> Response:
    """An error in the service's own shape: NestJS ``{message, error, statusCode}`` or Tines ``errors``."""
    if api == "fluents":
        body: Any = {"message": messages, "error": _REASONS.get(status, "Error"), "statusCode": status}
    elif status == 401:
        body = {"error": messages if isinstance(messages, str) else "; ".join(messages)}
    else:
        items = messages if isinstance(messages, list) else [messages]
        body = {"errors": [{"message": message} for message in items]}
    return JSONResponse(body, status_code=status, headers=headers)


class _SandboxMiddleware:
    """Journal, injected faults, auth and the rate limit, in that order, before any route runs."""

    def __init__(self, app: Any, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        api = _api_of(scope.get("path", "")) if scope["type"] == "http" else None
        if api is None:
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        self.state.record(_journal_entry(api, scope, headers, body))

        fault = self.state.take_fault(method, path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                await send(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
                )
                raise DroppedConnection("sandbox fault: connection dropped")
            if fault.reset:
                _reset_connection(send)
                raise DroppedConnection("sandbox fault: connection reset")
            if fault.trickle is not None:
                await _trickle(send, fault.trickle)
                return
            if fault.malformed:
                await Response('{"id": "trunc', status_code=200, media_type="application/json")(
                    scope, replay, send
                )
                return
            if fault.status is not None:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
                if fault.status in _BODILESS:
                    await Response(status_code=fault.status, headers=extra)(scope, replay, send)
                    return
                if fault.body is not None:
                    raw = Response(fault.body, fault.status, headers=extra, media_type=fault.content_type)
                    await raw(scope, replay, send)
                    return
                text = f"sandbox fault: HTTP {fault.status}"
                if fault.echo:  # as servers that repeat the request in their errors do, key included
                    text += f"; request headers {json.dumps(headers)}; body {body.decode('utf-8', 'replace')}"
                await error_response(api, fault.status, text, extra)(scope, replay, send)
                return

        token = self.state.fluents_token if api == "fluents" else self.state.tines_token
        sent = headers.get("authorization", "")
        if sent != f"Bearer {token}":
            message = (
                "Unauthorized" if api == "fluents" else "Authentication failed: invalid or missing API key"
            )
            await error_response(api, 401, message)(scope, replay, send)
            return
        if api == "tines" and path.startswith(_TINES_RATE_LIMITED):
            wait = self.state.rate_limit_wait(token)
            if wait is not None:
                retry = {"Retry-After": retry_after_header(wait)}
                message = f"Rate limit of {self.state.rate_limit.limit} requests exceeded, retry later"
                await error_response(api, 429, message, retry)(scope, replay, send)
                return
        await self.app(scope, replay, send)


_TRICKLED_BODY = b'{"sandbox": "a slow answer"}' + b" " * 36


async def _trickle(send: Any, interval: float) -> None:
    """A 200 whose JSON object arrives one byte at a time (bounded: 64 bytes)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_TRICKLED_BODY)).encode()),
            ],
        }
    )
    for index in range(len(_TRICKLED_BODY)):
        await asyncio.sleep(interval)
        last = index == len(_TRICKLED_BODY) - 1
        await send(
            {"type": "http.response.body", "body": _TRICKLED_BODY[index : index + 1], "more_body": not last}
        )


def _reset_connection(send: Any) -> None:
    """
    Reset the TCP connection (RST) without a byte of answer: uvicorn's ``send`` is a method of the
    request's cycle, which holds the transport; SO_LINGER 0 makes closing it send RST.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return  # not uvicorn: the DroppedConnection the caller raises closes it instead
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _journal_entry(api: str, scope: dict[str, Any], headers: dict[str, str], body: bytes) -> dict[str, Any]:
    shown_headers = dict(headers)
    if "authorization" in shown_headers:
        scheme = shown_headers["authorization"].split(" ", 1)[0]
        shown_headers["authorization"] = f"{scheme} ***"
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = body.decode("utf-8", errors="replace")
    client = scope.get("client") or ("", 0)
    return {
        "time": time.time(),
        "api": api,
        "method": scope["method"],
        "path": scope["path"],
        "query": scope.get("query_string", b"").decode("latin-1"),
        "headers": shown_headers,
        "body": parsed,
        "client": f"{client[0]}:{client[1]}",
    }


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        raise SandboxError(400, "Body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SandboxError(400, "Body must be a JSON object")
    return body


def _int_param(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SandboxError(400, [f"{name} must be an integer"]) from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SandboxError(400, [f"{name} must be {bound}"])
    return value


def _required_param(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise SandboxError(400, [f"{name} should not be empty"])
    return value


def _problems(problems: list[validation.Problem]) -> None:
    if problems:
        raise SandboxError(400, [f"{p.field} {p.rule}" for p in problems])


def create_app(state: SandboxState) -> FastAPI:
    """Build the sandbox application around ``state``."""
    app = FastAPI(
        title="Fluents and Tines API sandbox",
        description="A local emulator of the Fluents and Tines endpoints that airflow-provider-fluents-tines "
        "uses, with an admin API (journal, faults, config, reset, state) under `/_sandbox/`.",
        docs_url=f"{ADMIN_PREFIX}/docs",
        openapi_url=f"{ADMIN_PREFIX}/openapi.json",
        redoc_url=None,
    )
    app.state.sandbox = state

    @app.exception_handler(SandboxError)
    async def _sandbox_error(request: Request, exc: SandboxError) -> Response:
        return error_response(_api_of(request.url.path) or "tines", exc.status, exc.messages)

    # ---- Fluents --------------------------------------------------------------------------------

    @app.get("/v1/actions", tags=_FLUENTS_TAGS)
    def fluents_get_action(request: Request) -> Any:
        return state.fluents_action(_required_param(request, "id"))

    @app.post("/v1/actions/update", status_code=201, tags=_FLUENTS_TAGS)
    async def fluents_update_action(request: Request) -> Any:
        action_id = _required_param(request, "id")
        body = await _json_object(request)
        current_type = state.current_fluents_action_type(action_id)
        if current_type is None:
            raise SandboxError(404, f"Action with id {action_id} not found")
        _problems(
            validation.fluents_action_update_problems(
                body, allowed_types=validation.FLUENTS_PUBLISHED_ACTION_TYPES, current_type=current_type
            )
        )
        return state.update_fluents_action(action_id, body)

    @app.get("/v1/actions/list", tags=_FLUENTS_TAGS)
    def fluents_list_actions(request: Request) -> Any:
        return state.fluents_page(
            "actions", _int_param(request, "page", 1, 1), _int_param(request, "size", 10, 1, 100)
        )

    @app.get("/v1/numbers", tags=_FLUENTS_TAGS)
    def fluents_get_number(request: Request) -> Any:
        # A '+' sent unencoded arrives as a space, and such a number is not found, as on the real API.
        # The shape (agent and connection embedded, or their ids) is the fluents_number_shape knob's.
        return state.fluents_number(_required_param(request, "phone_number"))

    @app.post("/v1/numbers/update", status_code=201, tags=_FLUENTS_TAGS)
    async def fluents_update_number(request: Request) -> Any:
        phone_number = _required_param(request, "phone_number")
        body = await _json_object(request)
        _problems(validation.fluents_number_update_problems(body))
        return state.update_fluents_number(phone_number, body)

    @app.get("/v1/numbers/list", tags=_FLUENTS_TAGS)
    def fluents_list_numbers(request: Request) -> Any:
        return state.fluents_page(
            "numbers", _int_param(request, "page", 1, 1), _int_param(request, "size", 10, 1, 100)
        )

    # ---- Tines ----------------------------------------------------------------------------------

    def tines_id(raw: str) -> int:
        if not raw.isdigit():
            raise SandboxError(404, f"Action {raw} not found")
        return int(raw)

    @app.get("/api/v1/actions/{action_id}", tags=_TINES_TAGS)
    def tines_get_action(action_id: str) -> Any:
        return state.tines_action(tines_id(action_id))

    @app.put("/api/v1/actions/{action_id}", tags=_TINES_TAGS)
    async def tines_update_action(action_id: str, request: Request) -> Any:
        body = await _json_object(request)
        current_type = state.current_tines_action_type(tines_id(action_id))
        if current_type is None:
            raise SandboxError(404, f"Action {action_id} not found")
        _problems(validation.tines_action_update_problems(body, current_type=current_type))
        return state.update_tines_action(tines_id(action_id), body)

    @app.get("/api/v1/actions", tags=_TINES_TAGS)
    def tines_list_actions(request: Request) -> Any:
        per_page = min(_int_param(request, "per_page", 20, 1), 500)
        page = _int_param(request, "page", 1, 1)
        filters = {k: v for k, v in request.query_params.items() if k in ("story_id", "team_id", "type")}
        if "action_type" in request.query_params:
            filters["type"] = request.query_params["action_type"]
        actions = state.tines_list(filters)
        pages = max(1, -(-len(actions) // per_page))

        def page_url(number: int | None) -> str | None:
            if number is None:
                return None
            query = {**dict(parse_qsl(request.url.query)), "page": str(number), "per_page": str(per_page)}
            return str(request.url.replace_query_params(**query))

        next_number = page + 1 if page < pages else None
        return {
            "agents": actions[(page - 1) * per_page : page * per_page],
            "meta": {
                "current_page": page_url(page),
                "previous_page": page_url(page - 1 if page > 1 else None),
                "next_page": page_url(next_number),
                "next_page_number": next_number,
                "per_page": per_page,
                "pages": pages,
                "count": len(actions),
            },
        }

    @app.get("/api/v1/info", tags=_TINES_TAGS)
    def tines_info() -> Any:
        return state.tines_info

    # ---- admin ----------------------------------------------------------------------------------

    @app.get(f"{ADMIN_PREFIX}/journal", tags=_ADMIN_TAGS)
    def admin_journal(
        method: Annotated[str | None, Query(pattern=r"^[A-Za-z]+$", description="an HTTP method")] = None,
        path: Annotated[str | None, Query(min_length=1, description="a glob on the request path")] = None,
    ) -> Any:
        """The recorded API requests, oldest first, filtered by method and path glob."""
        return state.journal(method, path)

    @app.delete(f"{ADMIN_PREFIX}/journal", status_code=204, response_model=None, tags=_ADMIN_TAGS)
    def admin_clear_journal() -> None:
        state.clear_journal()

    @app.get(f"{ADMIN_PREFIX}/faults", tags=_ADMIN_TAGS)
    def admin_faults() -> Any:
        return [asdict(fault) for fault in state.faults]

    @app.post(f"{ADMIN_PREFIX}/faults", status_code=201, tags=_ADMIN_TAGS)
    def admin_add_fault(spec: FaultSpec) -> Any:
        """Add a fault for the next ``count`` matching requests; 422 (and no fault) when the spec is bad."""
        return asdict(state.add_fault(**spec.model_dump(exclude_unset=True)))

    @app.delete(f"{ADMIN_PREFIX}/faults", status_code=204, response_model=None, tags=_ADMIN_TAGS)
    def admin_clear_faults() -> None:
        state.clear_faults()

    @app.get(f"{ADMIN_PREFIX}/config", tags=_ADMIN_TAGS)
    def admin_config() -> Any:
        return state.configure()

    @app.put(f"{ADMIN_PREFIX}/config", tags=_ADMIN_TAGS)
    def admin_configure(update: ConfigUpdate) -> Any:
        """Change the knobs given, all or none: 422 (and nothing changed) when any value is bad."""
        return state.configure(**update.model_dump(exclude_none=True))

    @app.post(f"{ADMIN_PREFIX}/reset", status_code=204, response_model=None, tags=_ADMIN_TAGS)
    def admin_reset(seed: Annotated[Seed | None, Body()] = None) -> None:
        """
        Reload a seed (the packaged one when the body is empty or null); clears the journal, faults
        and rate counters. A body without the seed's shape is answered 422 and the state stays.
        """
        state.reset(seed.model_dump(exclude_unset=True) if seed is not None else None)

    @app.get(f"{ADMIN_PREFIX}/state", tags=_ADMIN_TAGS)
    def admin_state() -> Any:
        return state.snapshot()

    app.add_middleware(_SandboxMiddleware, state=state)
    return app
