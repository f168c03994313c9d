"""
What the sandbox accepts, as pydantic models: the admin API's request bodies and the seed's shape.

FastAPI validates each admin request against these before the handler runs, so a request that does
not fit is answered 422 with FastAPI's ``detail`` and changes nothing. :class:`SandboxState` checks
in-process calls against the same models and raises ``ValueError`` (pydantic's ``ValidationError``
is one) before changing anything. Values are strict: ``"2"`` is not a count and ``1`` is not a boolean.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: How ``GET /v1/numbers`` answers: ``embedded`` (the agent and the telephony account connection as
#: objects, the default) or ``normalized`` (their ids, as the update and list answers always are).
NumberShape = Literal["embedded", "normalized"]
NUMBER_SHAPES: tuple[str, ...] = ("embedded", "normalized")

MAX_FAULT_DELAY = 300.0
MAX_VISIBILITY_LAG = 3600.0
MAX_RATE_LIMIT_WINDOW = 86400.0

_NonEmpty = Annotated[str, Field(min_length=1)]


class _Closed(BaseModel):
    """Strict values, and no field the model does not know (a typo is an error, not ignored)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class _Open(BaseModel):
    """Strict values for the fields named; any other field is kept as given (seed objects)."""

    model_config = ConfigDict(strict=True, extra="allow")


# ---- admin request bodies -----------------------------------------------------------------------------


class FaultSpec(_Closed):
    """
    ``POST /_sandbox/faults``: what the next ``count`` requests matching ``method`` and ``path`` get.

    One effect at most: ``status`` (200-599, with ``retry_after`` as ``Retry-After``, and either the
    API's error shape, a raw ``body`` of ``content_type``, or an ``echo`` of the request), ``drop``,
    ``malformed``, ``reset`` or ``trickle``; ``delay`` seconds are waited first, and a fault may be a
    delay alone.
    """

    method: str = Field("*", pattern=r"^(\*|[A-Za-z]+)$", description="an HTTP method, or * for any")
    path: str = Field("*", min_length=1, max_length=2000, description="a glob on the request path")
    count: int = Field(1, ge=1, description="how many matching requests get the fault")
    status: int | None = Field(
        None, ge=200, le=599, description="answer with this status (a 1xx cannot be a final answer)"
    )
    retry_after: (
        Annotated[str, Field(min_length=1, max_length=200)]
        | Annotated[float, Field(ge=0, allow_inf_nan=False)]
        | None
    ) = Field(None, description="Retry-After with the status: seconds, or an HTTP date")
    delay: float = Field(
        0.0, ge=0, le=MAX_FAULT_DELAY, allow_inf_nan=False, description="seconds to wait first"
    )
    drop: bool = Field(False, description="close the connection after the status line")
    malformed: bool = Field(False, description="answer 200 with cut-off JSON")
    reset: bool = Field(False, description="reset the connection (TCP RST) without answering")
    trickle: float | None = Field(
        None,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="answer 200 with a small JSON object sent one byte every this many seconds",
    )
    body: str | None = Field(
        None, max_length=100_000, description="with a status: this body instead of the API's error shape"
    )
    content_type: str = Field("application/json", min_length=1, max_length=200)
    echo: bool = Field(
        False, description="with a status: an error body that echoes the request's headers and body"
    )

    @model_validator(mode="after")
    def _one_effect(self) -> FaultSpec:
        effects = [
            name
            for name in ("status", "drop", "malformed", "reset", "trickle")
            if getattr(self, name) not in (None, False)
        ]
        if len(effects) > 1:
            raise ValueError(f"a fault has one effect at most, not {' and '.join(effects)}")
        if self.retry_after is not None and self.status is None:
            raise ValueError("retry_after is sent with a status: give status too")
        if (self.body is not None or self.echo) and self.status is None:
            raise ValueError("body and echo shape a status's answer: give status too")
        if self.body is not None and self.echo:
            raise ValueError("a fault's answer is its body or an echo, not both")
        if not effects and self.delay == 0:
            raise ValueError("give an effect (status, drop, malformed, reset or trickle) or a delay")
        return self

    def retry_after_header(self) -> str | None:
        value = self.retry_after
        if isinstance(value, float):
            return str(int(value)) if value.is_integer() else str(value)
        return value


class RateLimitUpdate(_Closed):
    """The fields of the Tines actions rate limit to change; the others stay."""

    enabled: bool | None = None
    limit: int | None = Field(None, ge=1, description="requests per window")
    window: float | None = Field(None, gt=0, le=MAX_RATE_LIMIT_WINDOW, description="seconds")


class ConfigUpdate(_Closed):
    """``PUT /_sandbox/config``: the knobs to change; a knob left out (or null) stays as it is."""

    visibility_lag: float | None = Field(
        None, ge=0, le=MAX_VISIBILITY_LAG, allow_inf_nan=False, description="seconds before a write shows"
    )
    rate_limit: RateLimitUpdate | None = None
    fluents_number_shape: NumberShape | None = Field(
        None,
        description="embedded (agent and connection objects) or normalized (their ids) on GET /v1/numbers",
    )


# ---- the seed -----------------------------------------------------------------------------------------


class SeedAgent(_Open):
    """A Fluents agent. ``prompt``, ``actions`` (action ids or objects) and ``voice`` are filled in when left out."""

    id: _NonEmpty
    user_id: _NonEmpty | None = None
    name: str | None = None
    prompt: dict[str, Any] | None = None
    actions: list[_NonEmpty | dict[str, Any]] | None = None
    voice: dict[str, Any] | None = None


class SeedAccountConnection(_Open):
    """A telephony account connection (Twilio's shape in Vocode's SDK)."""

    id: _NonEmpty


class SeedFluentsAction(_Open):
    id: _NonEmpty
    type: _NonEmpty


class SeedNumber(_Open):
    """A number; ``inbound_agent`` and ``telephony_account_connection`` are ids of seeded objects."""

    number: str = Field(pattern=r"^\+[1-9][0-9]{1,14}$")
    inbound_agent: _NonEmpty | None = None
    telephony_account_connection: _NonEmpty | None = None
    example_context: dict[str, Any] | None = None


class FluentsSeed(_Closed):
    agents: list[SeedAgent] = []
    account_connections: list[SeedAccountConnection] = []
    actions: list[SeedFluentsAction] = []
    numbers: list[SeedNumber] = []

    @model_validator(mode="after")
    def _references(self) -> FluentsSeed:
        _unique("fluents.agents", [a.id for a in self.agents])
        _unique("fluents.account_connections", [c.id for c in self.account_connections])
        _unique("fluents.actions", [a.id for a in self.actions])
        _unique("fluents.numbers", [n.number for n in self.numbers])
        # An agent's action ids may name actions the seed leaves out: those are not embedded.
        agents = {a.id for a in self.agents}
        connections = {c.id for c in self.account_connections}
        for index, number in enumerate(self.numbers):
            if number.inbound_agent is not None and number.inbound_agent not in agents:
                raise ValueError(
                    f"fluents.numbers[{index}].inbound_agent: {number.inbound_agent!r} is not in fluents.agents"
                )
            connection = number.telephony_account_connection
            if connection is not None and connection not in connections:
                raise ValueError(
                    f"fluents.numbers[{index}].telephony_account_connection: {connection!r} is not in "
                    "fluents.account_connections"
                )
        return self


class SeedTinesAction(_Open):
    id: int = Field(ge=1)
    type: _NonEmpty
    name: str
    story_id: int
    sources: list[int] = []
    receivers: list[int] = []


class TinesSeed(_Closed):
    info: dict[str, Any] | None = None
    actions: list[SeedTinesAction] = []

    @model_validator(mode="after")
    def _references(self) -> TinesSeed:
        # Links to an action the seed leaves out are kept (a test may drop one to see it missing).
        _unique("tines.actions", [a.id for a in self.actions])
        return self


class Seed(_Closed):
    """``POST /_sandbox/reset``: the objects to start from (``default_seed.json`` has this shape)."""

    fluents: FluentsSeed | None = None
    tines: TinesSeed | None = None


def _unique(where: str, keys: list[Any]) -> None:
    twice = sorted(str(key) for key, seen in Counter(keys).items() if seen > 1)
    if twice:
        raise ValueError(f"{where}: {', '.join(twice)} appear more than once")


def check_seed(seed: Any) -> None:
    """Raise ``ValueError`` naming what in ``seed`` does not have the seed's shape."""
    Seed.model_validate(seed)
