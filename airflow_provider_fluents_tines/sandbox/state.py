"""
The sandbox's in-memory world: seeded objects, the visibility lag, the request journal, injected
faults and the rate limiter. Every public method takes one lock, so the server's threads and a
test's own thread can use it at once.

Knobs (also under ``/_sandbox/`` over HTTP, see ``app.py``), each checked whole before anything
changes (a bad one raises ``ValueError``; over HTTP, 422):

- ``configure(visibility_lag=SECONDS)``: writes show in reads after that long.
- ``configure(rate_limit={"enabled": True, "limit": 100, "window": 60})``: Tines' actions limit.
- ``configure(fluents_number_shape="embedded" | "normalized")``: how ``GET /v1/numbers`` answers.
  ``embedded`` (the default) gives the number's ``inbound_agent`` as the full agent (with its
  ``prompt``, ``actions`` and ``voice``) and its ``telephony_account_connection`` as an object, as
  Vocode's SDK (``vocode-api`` 0.0.48, ``PhoneNumber``) models that endpoint; ``normalized`` gives
  both as ids. The update answer is always normalized (Fluents' update page:
  ``NormalizedNumberDto``), and so are the list's items (the SDK's ``PhoneNumberPage``).
- ``add_fault(...)``: see :class:`Fault`.

The state stores numbers normalized: ``snapshot()`` shows ``inbound_agent`` and
``telephony_account_connection`` as ids whatever the shape served.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import math
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.sandbox.models import ConfigUpdate, FaultSpec, check_seed

DEFAULT_FLUENTS_TOKEN = "sandbox-fluents-key"
DEFAULT_TINES_TOKEN = "sandbox-tines-key"


def default_seed() -> dict[str, Any]:
    """The seed shipped with the package: realistic Fluents actions, numbers and agents, one Tines story."""
    text = resources.files(__package__).joinpath("default_seed.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass
class Fault:
    """
    What the next ``count`` requests matching ``method`` and ``path`` (a glob) get instead of an answer.

    One effect at most is applied: ``status`` (200-599, with an API-shaped error body, or none for
    204 and 304; ``Retry-After`` when ``retry_after`` is set; ``body`` answers that raw text of
    ``content_type`` instead, ``echo`` a body that repeats the request's headers and body, as some
    servers do), ``drop`` (the connection closes after the status line), ``malformed`` (a 200 whose
    JSON is cut off), ``reset`` (the connection is reset with no answer) or ``trickle`` (a 200 whose
    small JSON object arrives one byte every ``trickle`` seconds). ``delay`` seconds (at most
    300) are waited first; a fault with only a delay then answers normally. ``add_fault`` checks a
    spec against :class:`~airflow_provider_fluents_tines.sandbox.models.FaultSpec`.
    """

    method: str = "*"
    path: str = "*"
    count: int = 1
    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    drop: bool = False
    malformed: bool = False
    reset: bool = False
    trickle: float | None = None
    body: str | None = None
    content_type: str = "application/json"
    echo: bool = False
    id: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and fnmatch.fnmatchcase(path, self.path)


@dataclass
class RateLimit:
    """Tines' documented limit for ``/api/v1/actions``: ``limit`` requests per ``window`` seconds per token."""

    enabled: bool = False
    limit: int = 100
    window: float = 60.0


@dataclass
class _Versions:
    """An object's history, so reads can lag behind writes (eventual consistency)."""

    history: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def latest(self) -> dict[str, Any]:
        return self.history[-1][1]

    def visible(self, now: float, lag: float) -> dict[str, Any] | None:
        for written_at, value in reversed(self.history):
            if written_at + lag <= now:
                return value
        return None

    def write(self, value: dict[str, Any], now: float) -> None:
        self.history.append((now, value))
        del self.history[:-50]


class SandboxError(Exception):
    """An API error answer: status, the service's error body is built by the app."""

    def __init__(self, status: int, messages: str | list[str]) -> None:
        super().__init__(messages)
        self.status = status
        self.messages = messages


def _iso(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, tz=timezone.utc)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


class SandboxState:
    """
    The sandbox's state and knobs; reachable in-process and through ``/_sandbox/`` on the server.

    :param seed: the objects to start from; the packaged default seed when None. It must have the
        shape of ``default_seed.json`` (checked against ``models.Seed``; ``ValueError`` otherwise).
    :param visibility_lag: seconds before a write shows in reads.
    :param rate_limit: the Tines actions rate limit, off by default.
    :param fluents_number_shape: ``embedded`` (default) or ``normalized``: how ``GET /v1/numbers``
        shows the agent and the telephony account connection (objects, or ids).
    """

    def __init__(
        self,
        seed: dict[str, Any] | None = None,
        *,
        fluents_token: str = DEFAULT_FLUENTS_TOKEN,
        tines_token: str = DEFAULT_TINES_TOKEN,
        visibility_lag: float = 0.0,
        rate_limit: RateLimit | None = None,
        fluents_number_shape: str = "embedded",
    ) -> None:
        self.fluents_token = fluents_token
        self.tines_token = tines_token
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self.visibility_lag = 0.0
        self.rate_limit = RateLimit()
        self.fluents_number_shape = "embedded"
        self._windows: dict[str, tuple[float, int]] = {}
        self.configure(
            visibility_lag=visibility_lag,
            rate_limit=rate_limit,
            fluents_number_shape=fluents_number_shape,
        )
        self.reset(seed)

    # ---- knobs ----------------------------------------------------------------------------------

    def reset(self, seed: dict[str, Any] | None = None) -> None:
        """
        Reload ``seed`` (the default seed when None); clear the journal, faults and rate counters.

        A seed without the seed's shape raises ``ValueError`` and changes nothing. The knobs set
        with :meth:`configure` stay.
        """
        seed = copy.deepcopy(seed if seed is not None else default_seed())
        check_seed(seed)
        now = time.time()
        fluents = seed.get("fluents") or {}
        with self._lock:
            self._seed = seed
            self.journal_entries: list[dict[str, Any]] = []
            self.faults: list[Fault] = []
            self._windows = {}
            self._last_write = 0.0
            self.agents = {agent["id"]: _complete_agent(agent) for agent in fluents.get("agents", [])}
            self.account_connections = {c["id"]: c for c in fluents.get("account_connections", [])}
            self.fluents_actions = {a["id"]: _Versions([(0.0, a)]) for a in fluents.get("actions", [])}
            self.numbers = {n["number"]: _Versions([(0.0, n)]) for n in fluents.get("numbers", [])}
            tines = seed.get("tines") or {}
            completed = _link_both_ends(
                [self._complete_tines_action(a, now) for a in tines.get("actions", [])]
            )
            self.tines_actions = {a["id"]: _Versions([(0.0, a)]) for a in completed}
            self.tines_info = tines.get("info") or {"name": "sandbox"}

    def configure(
        self,
        *,
        visibility_lag: float | None = None,
        rate_limit: dict[str, Any] | RateLimit | None = None,
        fluents_number_shape: str | None = None,
    ) -> dict[str, Any]:
        """
        Change the knobs given (None leaves one as it is) and return them all.

        ``rate_limit`` is a :class:`RateLimit` or a dict of the fields to change. The whole change is
        checked against ``models.ConfigUpdate`` first: a bad value raises ``ValueError`` and
        changes nothing.
        """
        if isinstance(rate_limit, RateLimit):
            rate_limit = asdict(rate_limit)
        update = ConfigUpdate.model_validate(
            {
                "visibility_lag": visibility_lag,
                "rate_limit": rate_limit,
                "fluents_number_shape": fluents_number_shape,
            }
        )
        with self._lock:
            if update.visibility_lag is not None:
                self.visibility_lag = update.visibility_lag
            if update.rate_limit is not None:
                changes = update.rate_limit.model_dump(exclude_none=True)
                self.rate_limit = RateLimit(**{**asdict(self.rate_limit), **changes})
                self._windows.clear()
            if update.fluents_number_shape is not None:
                self.fluents_number_shape = update.fluents_number_shape
            return {
                "visibility_lag": self.visibility_lag,
                "rate_limit": asdict(self.rate_limit),
                "fluents_number_shape": self.fluents_number_shape,
            }

    def add_fault(self, **spec: Any) -> Fault:
        """
        Add a :class:`Fault`; faults apply in the order they were added.

        The spec is checked against ``models.FaultSpec`` first: a bad one raises ``ValueError``
        and adds nothing.
        """
        checked = FaultSpec.model_validate(spec)
        with self._lock:
            fault = Fault(
                method=checked.method.upper(),
                path=checked.path,
                count=checked.count,
                status=checked.status,
                retry_after=checked.retry_after_header(),
                delay=checked.delay,
                drop=checked.drop,
                malformed=checked.malformed,
                reset=checked.reset,
                trickle=checked.trickle,
                body=checked.body,
                content_type=checked.content_type,
                echo=checked.echo,
                id=next(self._seq),
            )
            self.faults.append(fault)
            return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.count > 0 and fault.matches(method, path):
                    fault.count -= 1
                    return fault
            return None

    # ---- journal --------------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            entry["seq"] = next(self._seq)
            self.journal_entries.append(entry)

    def journal(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Recorded API requests, oldest first, filtered by method and path glob."""
        with self._lock:
            return [
                copy.deepcopy(entry)
                for entry in self.journal_entries
                if (method is None or entry["method"] == method.upper())
                and (path is None or fnmatch.fnmatchcase(entry["path"], path))
            ]

    def clear_journal(self) -> None:
        with self._lock:
            self.journal_entries.clear()

    # ---- rate limit -----------------------------------------------------------------------------

    def rate_limit_wait(self, token: str, now: float | None = None) -> float | None:
        """Count a request on ``token``'s window; return the seconds to wait when it is over the limit."""
        now = time.time() if now is None else now
        with self._lock:
            if not self.rate_limit.enabled:
                return None
            started, used = self._windows.get(token, (now, 0))
            if now - started >= self.rate_limit.window:
                started, used = now, 0
            if used >= self.rate_limit.limit:
                return started + self.rate_limit.window - now
            self._windows[token] = (started, used + 1)
            return None

    # ---- reads ----------------------------------------------------------------------------------

    def _visible(self, versions: _Versions | None) -> dict[str, Any] | None:
        if versions is None:
            return None
        value = versions.visible(time.time(), self.visibility_lag)
        return copy.deepcopy(value) if value is not None else None

    def fluents_action(self, action_id: str) -> dict[str, Any]:
        with self._lock:
            action = self._visible(self.fluents_actions.get(action_id))
        if action is None:
            raise SandboxError(404, f"Action with id {action_id} not found")
        return action

    def fluents_number(self, phone_number: str, *, embedded: bool | None = None) -> dict[str, Any]:
        """
        A number as ``GET /v1/numbers`` answers it: with its agent and telephony account connection
        embedded as objects or given as ids (``embedded``; the ``fluents_number_shape`` knob when None).
        """
        with self._lock:
            number = self._visible(self.numbers.get(phone_number))
            if number is None:
                raise SandboxError(404, f"Number {phone_number} not found")
            if embedded is None:
                embedded = self.fluents_number_shape == "embedded"
            if embedded:
                agent_id = number.get("inbound_agent")
                if isinstance(agent_id, str):
                    number["inbound_agent"] = self._embedded_agent(agent_id)
                connection_id = number.get("telephony_account_connection")
                if isinstance(connection_id, str) and connection_id in self.account_connections:
                    number["telephony_account_connection"] = copy.deepcopy(
                        self.account_connections[connection_id]
                    )
            return number

    def _embedded_agent(self, agent_id: str) -> dict[str, Any]:
        """The agent with its actions as they read now (an agent lists action ids or objects)."""
        agent = copy.deepcopy(self.agents.get(agent_id, {"id": agent_id}))
        actions = []
        for action in agent.get("actions", []):
            if isinstance(action, str):
                action = self._visible(self.fluents_actions.get(action))
            if action is not None:
                actions.append(action)
        agent["actions"] = actions
        return agent

    def fluents_page(self, kind: str, page: int, size: int) -> dict[str, Any]:
        with self._lock:
            table = self.fluents_actions if kind == "actions" else self.numbers
            items = [v for v in (self._visible(ver) for ver in table.values()) if v is not None]
        start = (page - 1) * size
        return {
            "items": items[start : start + size],
            "page": page,
            "size": size,
            "has_more": start + size < len(items),
            "total": len(items),
            "total_is_estimated": False,
        }

    def tines_action(self, action_id: int) -> dict[str, Any]:
        with self._lock:
            action = self._visible(self.tines_actions.get(action_id))
        if action is None:
            raise SandboxError(404, f"Action {action_id} not found")
        return action

    def tines_list(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            actions = [
                v for v in (self._visible(ver) for ver in self.tines_actions.values()) if v is not None
            ]
        return [a for a in actions if all(str(a.get(key)) == str(value) for key, value in filters.items())]

    def snapshot(self) -> dict[str, Any]:
        """The latest state of every object, ignoring the visibility lag: what a test checks at the end."""
        with self._lock:
            return copy.deepcopy(
                {
                    "fluents": {
                        "actions": {k: v.latest() for k, v in self.fluents_actions.items()},
                        "numbers": {k: v.latest() for k, v in self.numbers.items()},
                    },
                    "tines": {"actions": {k: v.latest() for k, v in self.tines_actions.items()}},
                }
            )

    # ---- writes ---------------------------------------------------------------------------------

    def _write_time(self) -> float:
        # Strictly increasing, so updated_at moves on every write even within one clock tick.
        now = max(time.time(), self._last_write + 1e-6)
        self._last_write = now
        return now

    def update_fluents_action(self, action_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            versions = self.fluents_actions.get(action_id)
            if versions is None:
                raise SandboxError(404, f"Action with id {action_id} not found")
            action = {**copy.deepcopy(versions.latest()), **copy.deepcopy(body)}
            versions.write(action, self._write_time())
            return copy.deepcopy(action)

    def current_fluents_action_type(self, action_id: str) -> str | None:
        with self._lock:
            versions = self.fluents_actions.get(action_id)
            return versions.latest().get("type") if versions else None

    def current_tines_action_type(self, action_id: int) -> str | None:
        with self._lock:
            versions = self.tines_actions.get(action_id)
            return versions.latest().get("type") if versions else None

    def update_fluents_number(self, phone_number: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            versions = self.numbers.get(phone_number)
            if versions is None:
                raise SandboxError(404, f"Number {phone_number} not found")
            number = copy.deepcopy(versions.latest())
            changes = copy.deepcopy(body)
            if "inbound_agent" in changes:
                agent = changes["inbound_agent"]
                agent_id = agent.get("id") if isinstance(agent, dict) else agent
                if agent_id is not None and agent_id not in self.agents:
                    raise SandboxError(400, [f"inbound_agent {agent_id} does not exist"])
                changes["inbound_agent"] = agent_id
                number["inbound_agent_name"] = self.agents[agent_id]["name"] if agent_id else None
            number.update(changes)
            versions.write(number, self._write_time())
            return copy.deepcopy(number)

    def update_tines_action(self, action_id: int, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            versions = self.tines_actions.get(action_id)
            if versions is None:
                raise SandboxError(404, f"Action {action_id} not found")
            action = copy.deepcopy(versions.latest())
            body = validation.tines_ids_as_ints(body)  # the API takes ids as digit strings too
            now = self._write_time()
            touched = self._relink(action, body, now)
            for key in _TINES_PLAIN_FIELDS:
                if key in body:
                    action[key] = copy.deepcopy(body[key])
            if "num_runs_to_save" in body:
                action["story_run_save_setting"] = {"num_runs_to_save": body["num_runs_to_save"]}
            action["slug"] = _slug(action["name"])
            action["updated_at"] = _iso(now)
            versions.write(action, now)
            for other_id, other in touched.items():
                other["updated_at"] = _iso(now)
                self.tines_actions[other_id].write(other, now)
            return copy.deepcopy(action)

    def _relink(self, action: dict[str, Any], body: dict[str, Any], now: float) -> dict[int, dict[str, Any]]:
        """Apply source/receiver changes to both ends of each link, as Tines keeps links symmetric."""
        touched: dict[int, dict[str, Any]] = {}

        def other(other_id: int) -> dict[str, Any]:
            if other_id not in self.tines_actions or other_id == action["id"]:
                raise SandboxError(400, f"Action {other_id} cannot be linked to action {action['id']}")
            if other_id not in touched:
                touched[other_id] = copy.deepcopy(self.tines_actions[other_id].latest())
            if touched[other_id]["story_id"] != action["story_id"]:
                raise SandboxError(400, f"Action {other_id} is in another story")
            return touched[other_id]

        for own, mirror, ids_key, links_key, id_key in (
            ("links_to_sources", "links_to_receivers", "source_ids", "links_to_sources", "source_id"),
            ("links_to_receivers", "links_to_sources", "receiver_ids", "links_to_receivers", "receiver_id"),
        ):
            if ids_key in body:
                wanted = [{id_key: i, "type": "DEFAULT"} for i in body[ids_key]]
            elif links_key in body:
                wanted = [
                    {id_key: link[id_key], "type": link.get("type", "DEFAULT")} for link in body[links_key]
                ]
            else:
                continue
            mirror_key = "receiver_id" if id_key == "source_id" else "source_id"
            for link in action[own]:
                peer = other(link[id_key])
                peer[mirror] = [m for m in peer[mirror] if m[mirror_key] != action["id"]]
            action[own] = [{id_key: w[id_key], "link_type": w["type"]} for w in wanted]
            for w in wanted:
                peer = other(w[id_key])
                peer[mirror] = [m for m in peer[mirror] if m[mirror_key] != action["id"]]
                peer[mirror].append({mirror_key: action["id"], "link_type": w["type"]})
        for item in [action, *touched.values()]:
            item["sources"] = [link["source_id"] for link in item["links_to_sources"]]
            item["receivers"] = [link["receiver_id"] for link in item["links_to_receivers"]]
        return touched

    def _complete_tines_action(self, seeded: dict[str, Any], now: float) -> dict[str, Any]:
        """Fill the response fields of the seed's table that a seed file need not spell out."""
        action = {**_TINES_DEFAULTS, **copy.deepcopy(seeded)}
        action.setdefault("guid", uuid.uuid5(uuid.NAMESPACE_OID, str(action["id"])).hex)
        action.setdefault("created_at", _iso(now - 86400))
        action.setdefault("updated_at", _iso(now - 3600))
        action["slug"] = _slug(action["name"])
        if action["type"] in validation.TINES_RUN_SAVING_TYPES:
            action.setdefault("story_run_save_setting", {"num_runs_to_save": 10})
        return action


_TINES_PLAIN_FIELDS = (
    "name",
    "description",
    "options",
    "position",
    "schedule",
    "disabled",
    "monitor_failures",
    "monitor_all_events",
    "monitor_no_events_emitted",
)
_TINES_DEFAULTS: dict[str, Any] = {
    "user_id": 1,
    "description": None,
    "options": {},
    "schedule": None,
    "blended_events_count": 0,
    "logs_count": 0,
    "last_check_at": None,
    "last_receive_at": None,
    "last_event_at": None,
    "last_error_log_at": None,
    "disabled": False,
    "group_id": None,
    "position": {"x": 0, "y": 0},
    "story_mode": "LIVE",
    "nested_group_id": None,
    "monitor_failures": False,
    "monitor_all_events": False,
    "monitor_no_events_emitted": None,
    "time_saved_unit": "minutes",
    "time_saved_value": 0,
    "page": None,
    "action_memory_contents": {},
}


def _complete_agent(seeded: dict[str, Any]) -> dict[str, Any]:
    """
    Fill the fields Vocode's SDK requires of an embedded agent (``user_id``, ``prompt``,
    ``actions``, ``voice``) that a seed file need not spell out.
    """
    agent = copy.deepcopy(seeded)
    user_id = agent.get("user_id") or "usr_sandbox"
    agent["user_id"] = user_id
    if agent.get("prompt") is None:
        agent["prompt"] = {
            "id": f"prm_{agent['id']}",
            "user_id": user_id,
            "content": "You are a helpful phone agent.",
        }
    if agent.get("actions") is None:
        agent["actions"] = []
    if agent.get("voice") is None:
        agent["voice"] = {
            "id": f"vce_{agent['id']}",
            "user_id": user_id,
            "type": "voice_azure",
            "voice_name": "en-US-JennyNeural",
        }
    return agent


def _link_both_ends(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seeds may declare a link on either end (``sources`` or ``receivers``); give both ends every link."""
    links: dict[tuple[int, int], str] = {}
    for action in actions:
        for source in action.get("sources", []):
            links.setdefault((source, action["id"]), "DEFAULT")
        for receiver in action.get("receivers", []):
            links.setdefault((action["id"], receiver), "DEFAULT")
    for action in actions:
        own = action["id"]
        action["links_to_sources"] = [
            {"source_id": s, "link_type": t} for (s, r), t in links.items() if r == own
        ]
        action["links_to_receivers"] = [
            {"receiver_id": r, "link_type": t} for (s, r), t in links.items() if s == own
        ]
        action["sources"] = [link["source_id"] for link in action["links_to_sources"]]
        action["receivers"] = [link["receiver_id"] for link in action["links_to_receivers"]]
    return actions


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up so a client that honours it is never early."""
    return str(max(1, math.ceil(seconds)))
