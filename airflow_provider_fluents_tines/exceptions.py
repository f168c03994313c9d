"""Exceptions raised by this provider, and the one parser of the APIs' error bodies."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from airflow_provider_fluents_tines.redaction import printable, scrub
from airflow_provider_fluents_tines.version_compat import AirflowException, AirflowFailException

_MAX_MESSAGE_CHARS = 500


class FluentsTinesError(AirflowException):
    """Base class of every error raised by this provider."""


class InvalidFieldError(FluentsTinesError, AirflowFailException, ValueError):
    """
    A task argument breaks a rule of the API; raised before any request is sent.

    It is an ``AirflowFailException``: retrying the task cannot fix its input.

    :param field: the argument (or API field) at fault.
    :param rule: the rule it breaks, in words.
    """

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class InvalidTriggerArgument(InvalidFieldError, TypeError):
    """
    A trigger's argument breaks a rule. Also a ``TypeError``: that is what Airflow's triggerer
    expects of a trigger it cannot build from stored kwargs (it then fails that trigger alone,
    where any other error would stop every trigger of the process).
    """


class ApiRequestError(FluentsTinesError):
    """
    A request to the Fluents or Tines API failed.

    :param service: ``"Fluents"`` or ``"Tines"``.
    :param method: the HTTP method.
    :param path: the request path, with its query string.
    :param http_status: the HTTP status, or ``None`` when no response arrived.
    :param api_message: the API's own message, or a description of the transport failure.
    :param retryable: whether the retry policy treats this failure as transient.
    :param retry_after: seconds the server asked to wait (``Retry-After``), if it did.
    """

    def __init__(
        self,
        *,
        service: str,
        method: str,
        path: str,
        http_status: int | None,
        api_message: str,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        self.service = service
        self.method = method
        self.path = path
        self.http_status = http_status
        self.api_message = api_message
        self.retryable = retryable
        self.retry_after = retry_after
        status = f"HTTP {http_status}" if http_status is not None else "no response"
        super().__init__(f"{service} API {method} {path} failed ({status}): {api_message}")

    def __reduce__(self):
        # The keyword-only __init__ defeats Exception's default pickling; rebuild through it instead.
        fields = ("service", "method", "path", "http_status", "api_message", "retryable", "retry_after")
        return _rebuild_api_error, (type(self), {name: getattr(self, name) for name in fields})


class ApiClientError(ApiRequestError, AirflowFailException):
    """A 4xx answer that retrying cannot fix: fails the task without Airflow task retries."""


def _rebuild_api_error(cls: type[ApiRequestError], kwargs: dict[str, Any]) -> ApiRequestError:
    return cls(**kwargs)


def extract_api_message(body: str | bytes | None, secrets: Iterable[str] = ()) -> str:
    """
    Return the human message from an error body of either API, fit for a log line.

    Fluents (NestJS) answers ``{message, error, statusCode}`` where ``message`` may be a list;
    older Vocode paths answer ``{"detail": [{loc, msg}]}``; Tines bodies vary between
    ``{"errors": [{"message": ...}]}``, a bare list, ``{"errors": {field: [...]}}``,
    ``{"error": "..."}`` and plain text.

    :param secrets: values to scrub out (the API key a server may echo): scrubbed before the
        message is cut short, so a cut cannot leave part of one.
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = (body or "").strip()
    if not text:
        return "(empty body)"
    try:
        message = _message_from(json.loads(text)) or text
    except ValueError:
        message = text
    return _clip(printable(scrub(message, secrets)))


def _message_from(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [_message_from(item) for item in value]
        return "; ".join(part for part in parts if part)
    if not isinstance(value, dict):
        return ""
    for key in ("message", "errors", "error", "detail", "msg", "details"):
        if key not in value:
            continue
        inner = value[key]
        if key == "errors" and isinstance(inner, dict):
            # Rails style: {"errors": {"field": ["is invalid"]}}
            return "; ".join(f"{field} {_message_from(msgs)}" for field, msgs in inner.items())
        if key == "detail" and isinstance(inner, list):
            return "; ".join(_vocode_detail(item) for item in inner)
        message = _message_from(inner)
        if message:
            return message
    return ""


def _vocode_detail(item: Any) -> str:
    if isinstance(item, dict) and "msg" in item:
        loc = ".".join(str(part) for part in item.get("loc", []) if part != "body")
        return f"{loc}: {item['msg']}" if loc else str(item["msg"])
    return _message_from(item)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[:_MAX_MESSAGE_CHARS] + "..."
