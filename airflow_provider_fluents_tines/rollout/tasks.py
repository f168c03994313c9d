"""
The tasks of a rollout: plan, apply a wave, verify a wave, roll back, and the result. Built and wired
by :class:`~airflow_provider_fluents_tines.rollout.group.Rollout`; each can be read on its own.

Every task takes the same ``changes`` (rendered in each task: a desired secret never travels through
XCom) and checks them against the plan by digest before it reads or writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk import BaseOperator, BaseSensorOperator

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.exceptions import ApiRequestError, InvalidFieldError
from airflow_provider_fluents_tines.matching import differences
from airflow_provider_fluents_tines.objects import ObjectKind
from airflow_provider_fluents_tines.redaction import (
    mask_sensitive,
    seal,
    unseal,
    without_sensitive,
)
from airflow_provider_fluents_tines.rollout import report
from airflow_provider_fluents_tines.rollout.changes import (
    Change,
    as_changes,
    check_waves,
    is_plain,
    wave_sizes,
)
from airflow_provider_fluents_tines.rollout.plan import (
    CHANGE,
    Plan,
    PlanEntry,
    may_hold_desired,
    plan_entry,
    restore,
)
from airflow_provider_fluents_tines.version_compat import (
    AIRFLOW_V_3_1_PLUS,
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    conf,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_fluents_tines.hooks.base import BaseServiceHook

#: XCom keys (the plan itself is the plan task's return value).
TABLE_XCOM_KEY = "table"
SNAPSHOT_XCOM_KEY = "snapshot"
RESULTS_XCOM_KEY = "results"
REPORT_XCOM_KEY = "report"
#: The task state store key of the plan (Airflow 3.3+: shared by every try of the plan task).
PLAN_STATE_KEY = "plan"

# Per-object statuses: what apply did, and what the rollback left.
APPLIED, ALREADY, FAILED, NOT_ATTEMPTED = "applied", "already_in_state", "failed", "not_attempted"
RESTORED, UNTOUCHED, CONFLICT, UNRESTORABLE, UNSETTLED = (
    "restored",
    "untouched",
    "conflict",
    "unrestorable",
    "unsettled",
)

_FAILED_STATES = frozenset({"failed", "upstream_failed"})
_RAN_STATES = frozenset({"success", "failed", "up_for_retry", "running", "deferred"})


class RolloutTask(BaseOperator):
    """
    What every rollout task shares: the changes, the connections and the hooks.

    :param changes: the rollout's changes: a list of :class:`Change` or ``{kind, id, fields}`` dicts
        (templated, or an XComArg).
    :param conn_ids: service -> connection id: ``{"fluents": ..., "tines": ...}``.
    :param plan_task_id: the plan task's id (its return value is the plan).
    :param hook_params: settings for the hooks, over the connections' extras (as on every operator).
    """

    template_fields: Sequence[str] = ("changes",)
    # Airflow deep-copies tasks (dag.test() on Airflow 3.0 copies the DAG at each call): a hook that
    # ran holds a session, which does not copy, and must not be shared as if it were settings.
    shallow_copy_attrs: Sequence[str] = ("_hooks",)
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        changes: Any,
        conn_ids: Mapping[str, str],
        plan_task_id: str,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(changes, (list, tuple)):
            # As dicts: Airflow renders templates inside them, and masks values under sensitive keys in
            # the rendered fields it stores (a dataclass would be stored as its repr, in the clear).
            changes = [change.as_dict() if isinstance(change, Change) else change for change in changes]
        self.changes = changes
        self.conn_ids = dict(conn_ids)
        self.plan_task_id = plan_task_id
        self.hook_params = hook_params
        self._hooks: dict[str, BaseServiceHook] = {}

    def render_template(self, content: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        # Jinja compiles every string it is given: 1,000 changes without a template in them would
        # cost each task about half a second of CPU. Plain values (no Jinja, no XComArg) are kept as given.
        if isinstance(content, (list, tuple)) and is_plain(content):
            return content
        return super().render_template(content, context, *args, **kwargs)

    def checked_changes(self) -> list[Change]:
        changes = as_changes(self.changes, rendered=True)
        for change in changes:
            mask_sensitive(change.fields)
        return changes

    def hook_for(self, kind: ObjectKind) -> BaseServiceHook:
        """One hook per service for the whole task (one session, one budget per host and key)."""
        service = kind.key.split(".", 1)[0]
        if service not in self._hooks:
            conn_id = self.conn_ids.get(service)
            if not conn_id:
                raise validation.invalid("conn_ids", f"names no connection for {kind.service} ({service!r})")
            self._hooks[service] = kind.hook_class().from_hook_params(conn_id, self.hook_params)
        return self._hooks[service]

    def read(self, change: Change, deadline: float | None = None) -> dict[str, Any]:
        """The object as read now (secrets registered with the masker); ``deadline`` bounds the call."""
        current = self.hook_for(change.object_kind).get_object(
            change.object_kind, change.id, deadline=deadline
        )
        mask_sensitive(current)
        return current

    def pulled_plan(self, context: Context) -> Plan | None:
        return context["ti"].xcom_pull(task_ids=self.plan_task_id)

    def planned(self, context: Context, entries: list[PlanEntry]) -> list[tuple[PlanEntry, Change]]:
        """Each entry with its change, refusing a change that differs from the one planned."""
        changes = {change.key: change for change in self.checked_changes()}
        paired = []
        for entry in entries:
            change = changes.get(entry["key"])
            if change is None or change.digest() != entry["digest"]:
                raise validation.invalid(
                    "changes",
                    f"{entry['key']} differs from what task {self.plan_task_id!r} planned (the changes must "
                    "render the same in every task of a rollout); clear the plan task to plan again",
                )
            paired.append((entry, change))
        return paired


class RolloutPlanOperator(RolloutTask):
    """
    Check every change, read every object, compute each diff and take the snapshot of every field
    the rollout will change (``null`` included), before any write. Returns the :class:`Plan`; the
    plan is also logged as a table and pushed as text under ``table``.

    On Airflow 3.3+ the plan is kept in the task state store too. When the plan task runs again in
    a run (a retry, a clear), it reuses the first snapshot of each object (from the task state store,
    or from the apply tasks' copies) instead of snapshotting values the rollout may have written.

    :param waves: wave sizes, counts or fractions (:func:`~rollout.changes.check_waves`).
    :param allow_unrestorable: go ahead when the way back cannot restore a field (the API does not
        show it, or refuses its old value); the plan reports those as unrestorable.
    :param allow_unrestorable_secrets: without a Fernet key, change fields holding secrets anyway
        (their old values are not kept, so the rollback cannot restore them).
    :param new_snapshot: take a new snapshot even when this run already has one.
    :param apply_task_ids: the rollout's apply tasks (their snapshot copies outlive this task's XCom).
    :param drift: plan-only mode: write nothing, and when objects differ from the desired state
        ``"fail"`` the task, ``"soft_fail"`` (skip) it, or only ``"report"`` them.
    """

    template_fields: Sequence[str] = ("changes", "waves", "approval")
    ui_color = "#fcf3cf"

    def __init__(
        self,
        *,
        waves: Sequence[int | float] | str = (1.0,),
        wave_count: int | None = None,
        approval: Any = False,
        allow_unrestorable: bool = False,
        allow_unrestorable_secrets: bool = False,
        new_snapshot: bool = False,
        apply_task_ids: Sequence[str] = (),
        drift: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.waves = waves if isinstance(waves, str) else check_waves(waves)
        self.wave_count = len(self.waves) if wave_count is None and not isinstance(waves, str) else wave_count
        self.approval = approval
        if drift not in (None, "fail", "soft_fail", "report"):
            raise validation.invalid("drift", f"must be 'fail', 'soft_fail' or 'report', got {drift!r}")
        self.drift = drift
        self.allow_unrestorable = allow_unrestorable
        self.allow_unrestorable_secrets = allow_unrestorable_secrets
        self.new_snapshot = new_snapshot
        self.apply_task_ids = list(apply_task_ids)

    def _checked_waves(self) -> list[int | float]:
        waves: Any = self.waves
        if isinstance(waves, str):  # rendered from a template (a param): JSON
            try:
                waves = json.loads(waves)
            except ValueError:
                raise validation.invalid(
                    "waves", f"must render to a JSON list, got {waves[:100]!r}"
                ) from None
        checked = check_waves(waves)
        if self.wave_count is not None and len(checked) != self.wave_count:
            raise validation.invalid(
                "waves",
                f"this rollout has {self.wave_count} wave(s) of tasks; give that many sizes, got {checked}",
            )
        return checked

    def execute(self, context: Context) -> Plan:
        waves = self._checked_waves()
        if _truthy(self.approval) and not AIRFLOW_V_3_1_PLUS:
            raise validation.invalid("approval", "needs Airflow 3.1 or newer (human-in-the-loop operators)")
        changes = self.checked_changes()  # every change checked before the first request
        sizes = wave_sizes(waves, len(changes))
        wave_of = [wave for wave, size in enumerate(sizes, 1) for _ in range(size)]
        store = context.get("task_state_store") if self.drift is None else None
        first, source = self._first_snapshot(context, store)
        entries: list[PlanEntry] = []
        for index, change in enumerate(changes):
            entry = plan_entry(change, self.read(change), wave_of[index], f"changes[{index}]")
            earlier = first.get(change.key)
            if earlier is not None:
                if earlier["digest"] != entry["digest"]:
                    raise validation.invalid(
                        f"changes[{index}]",
                        f"{change.key} differs from the change this run first planned ({source}), and the "
                        "rollout may already have written that one; pass new_snapshot=True to plan anew",
                    )
                entry["snapshot"], entry["unrestorable"] = earlier["snapshot"], earlier["unrestorable"]
            elif self.drift is None:
                entry["snapshot"], unkept = seal(
                    entry["snapshot"],
                    allow_unkept=self.allow_unrestorable_secrets,
                    option="allow_unrestorable_secrets",
                )
                for name in unkept:
                    entry["unrestorable"][name] = "holds a secret not kept (no Fernet key)"
            else:
                entry["snapshot"] = {}
            if self.drift is None:
                entry["desired"], _ = seal(
                    entry["desired"], allow_unkept=True, option="allow_unrestorable_secrets"
                )
            else:
                entry["desired"] = {}
            entries.append(entry)
        if first:
            self.log.info("Reusing the snapshot this run took first (%s), not the values read now.", source)
        ti = context["ti"]
        plan: Plan = {
            "entries": entries,
            "waves": sizes,
            "taken_at": datetime.now(timezone.utc).isoformat(),
            "taken_by_try": int(getattr(ti, "try_number", 1) or 1),
        }
        table = report.plan_table(plan)
        self.log.info("Rollout plan:\n%s", table)
        ti.xcom_push(key=TABLE_XCOM_KEY, value=table)
        if self.drift is not None:
            return self._report_drift(plan)
        unrestorable = [
            f"{entry['key']} {name} {why}" for entry in entries for name, why in entry["unrestorable"].items()
        ]
        if unrestorable and not self.allow_unrestorable:
            raise validation.invalid(
                "changes",
                "the rollback could not restore: "
                + "; ".join(unrestorable)
                + ". Pass allow_unrestorable=True to roll out anyway (the report will name them)",
            )
        if store is not None:
            store.set(PLAN_STATE_KEY, cast("Any", plan))
        return plan

    def _first_snapshot(self, context: Context, store: Any) -> tuple[dict[str, PlanEntry], str]:
        """This run's first snapshot of each object, if the plan ran before, and where it was found."""
        if self.drift is not None:
            return {}, ""
        earlier: dict[str, PlanEntry] = {}
        source = ""
        stored = store.get(PLAN_STATE_KEY) if store is not None else None
        if isinstance(stored, Mapping):
            earlier = {entry["key"]: entry for entry in stored.get("entries", [])}
            source = f"the task state store, taken at {stored.get('taken_at')}"
        if self.apply_task_ids:
            copies = context["ti"].xcom_pull(task_ids=self.apply_task_ids, key=SNAPSHOT_XCOM_KEY)
            for copy in copies if isinstance(copies, list) else [copies]:
                for entry in copy or []:
                    if isinstance(entry, Mapping) and entry.get("key") not in earlier:
                        earlier[entry["key"]] = entry  # type: ignore[assignment]
                        source = source or "the copies the apply tasks kept"
        if earlier and self.new_snapshot:
            self.log.warning("new_snapshot=True: taking a new snapshot; this run's first one is dropped.")
            return {}, ""
        return earlier, source

    def _report_drift(self, plan: Plan) -> Plan:
        drifted = [entry["key"] for entry in plan["entries"] if entry["status"] == CHANGE]
        if not drifted:
            self.log.info("No drift: every object shows its desired state.")
            return plan
        message = f"{len(drifted)} object(s) differ from the desired state: {', '.join(drifted)[:2000]}"
        if self.drift == "fail":
            raise AirflowFailException(message)
        if self.drift == "soft_fail":
            raise AirflowSkipException(message)
        self.log.warning(message)
        return plan


class DriftCheckOperator(RolloutPlanOperator):
    """
    A rollout's plan as a scheduled check: read every object of ``changes`` and report those whose
    live state differs from the desired state; writes nothing. The plan table is logged and pushed
    under ``table``; the plan (every object's diff) is the return value.

    :param changes: the desired state, as for a rollout (a list, an XComArg, or :func:`load_changes`
        of a YAML or JSON file next to the DAG, checked when the DAG is parsed).
    :param on_drift: when objects differ: ``"fail"`` the task, ``"soft_fail"`` (skip it), or only
        ``"report"`` them in the log.
    :param fluents_conn_id: the Fluents connection.
    :param tines_conn_id: the Tines connection.
    """

    def __init__(
        self,
        *,
        changes: Any,
        on_drift: str = "fail",
        fluents_conn_id: str = "fluents_default",
        tines_conn_id: str = "tines_default",
        **kwargs: Any,
    ) -> None:
        if isinstance(changes, (list, tuple)):
            as_changes(changes)  # a bad literal change is a DAG import error, naming it
        super().__init__(
            changes=changes,
            conn_ids={"fluents": fluents_conn_id, "tines": tines_conn_id},
            plan_task_id=kwargs["task_id"],
            drift=on_drift,
            **kwargs,
        )


class RolloutApplyOperator(RolloutTask):
    """
    Write one wave's changes, object by object, each after reading it again: an object already in
    its desired state is not written (so a retry writes only what is left), and one whose planned
    fields someone else changed since the plan is not written either (its way back would be wrong).
    Writes go through the hooks' request budget. Stops at the first failed write.

    Returns, and pushes under ``results``, one ``{key, status, message, maybe_written}`` per object:
    ``applied``, ``already_in_state``, ``failed`` (with the API's message) or ``not_attempted``;
    ``maybe_written`` is false where the API surely took nothing (a 4xx, a broken rule).

    :param wave: the 1-based wave number.
    """

    ui_color = "#d6eaf8"

    def __init__(self, *, wave: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wave = wave

    def execute(self, context: Context) -> list[dict[str, Any]]:
        plan = self.pulled_plan(context)
        if plan is None:
            raise AirflowFailException(f"task {self.plan_task_id!r} left no plan")
        entries = [entry for entry in plan["entries"] if entry["wave"] == self.wave]
        ti = context["ti"]
        # The way back outlives the plan task's XCom (cleared if the plan task runs again).
        ti.xcom_push(key=SNAPSHOT_XCOM_KEY, value=entries)
        if not entries:
            self.log.info("Wave %d has no objects.", self.wave)
            return []
        paired = self.planned(context, entries)
        self._try = int(getattr(ti, "try_number", 1) or 1)
        linked = linked_ids([_planned_change(other) for other in plan["entries"]])
        self._linked = {entry["key"]: linked.get(entry["key"], set()) for entry, _ in paired}
        store = context.get("task_state_store")
        results: list[dict[str, Any]] = []
        failure: Exception | None = None
        for entry, change in paired:
            key = entry["key"]
            if failure is not None:
                results.append(
                    {
                        "key": key,
                        "status": NOT_ATTEMPTED,
                        "message": "",
                        "maybe_written": self._written_before(context, store, key),
                    }
                )
                continue
            try:
                status = self._apply(entry, change, store)
                written = status == APPLIED or self._written_before(context, store, key)
                results.append({"key": key, "status": status, "message": "", "maybe_written": written})
            except (ApiRequestError, InvalidFieldError) as err:
                failure = err
                # A refusal (4xx, a broken rule) wrote nothing now; a timeout or a 5xx may have landed.
                maybe = isinstance(err, ApiRequestError) and (
                    err.http_status is None or err.http_status >= 500
                )
                results.append(
                    {
                        "key": key,
                        "status": FAILED,
                        "message": str(err),
                        "maybe_written": maybe or self._written_before(context, store, key),
                    }
                )
        ti.xcom_push(key=RESULTS_XCOM_KEY, value=results)
        self.log.info("Wave %d:\n%s", self.wave, report.results_table(results))
        if failure is not None:
            retryable = isinstance(failure, ApiRequestError) and failure.retryable
            error = AirflowException if retryable else AirflowFailException
            raise error(f"Wave {self.wave} stopped at a failed write: {failure}")
        return results

    def _written_before(self, context: Context, store: Any, key: str) -> bool:
        """
        Whether an earlier try of this task, or an earlier attempt of a cleared run, may have
        written ``key`` (its result went with that try's XComs). On Airflow 3.3 each write's intent
        is in the task state store, with the try that sent it (this try's own outcome is known
        here: a refused write did not land); before, any try but the first of a run never cleared may have.
        """
        if store is not None:
            intent = store.get(f"intent:{key}")
            return bool(intent) and not (isinstance(intent, Mapping) and intent.get("try") == self._try)
        cleared = getattr(context.get("dag_run"), "clear_number", None)
        return self._try > 1 or cleared != 0

    def _apply(self, entry: PlanEntry, change: Change, store: Any) -> str:
        kind = change.object_kind
        current = self.read(change)
        observed = kind.normalize(current)
        found = differences(change.fields, observed, subset=False)
        if not found:
            intent = store.get(f"intent:{entry['key']}") if store is not None else None
            if intent:  # an earlier try sent it, and it landed: written by this rollout, not found so
                self.log.info("%s is in its desired state: an earlier try's write landed.", entry["key"])
                return APPLIED
            self.log.info("%s is already in its desired state.", entry["key"])
            return ALREADY
        snapshot, _ = unseal(entry["snapshot"])
        # Links the rollout's other changes made (Tines links are symmetric) are not someone else's.
        linked = self._linked.get(entry["key"], set())
        compared = kind.without_links_to(observed, linked)
        snapshot = kind.without_links_to(snapshot, linked)
        for difference in found:
            name = kind.restored_fields([difference.path], entry["snapshot"])[0]
            if name in entry["unrestorable"]:
                continue  # opted in: the plan reported it
            # A field in state at the plan has no snapshot: it moved since, and has no way back.
            moved = name not in entry["snapshot"] or (
                name in snapshot and bool(differences({name: snapshot[name]}, compared, subset=False))
            )
            if moved:
                raise validation.invalid(
                    entry["key"],
                    f"{difference.path} changed since the plan (it shows neither its planned value nor the "
                    "desired one): not written, since the way back would restore a value nobody has now; "
                    "check who changed it before planning again",
                )
        # Only what differs (and what the API takes only together with it) is sent: re-sending a field
        # already in state can reset what the snapshot does not hold (Tines link types under source_ids).
        differing = {difference.path for difference in found}
        needed = {
            name
            for name in change.fields
            if name in differing or any(name in kind.companion_fields.get(other, ()) for other in differing)
        }
        try:
            body = kind.complete_body({name: change.fields[name] for name in needed}, current)
            kind.check_update(body, current=current)
        except InvalidFieldError:  # the API wants more of the change together: send it all
            body = kind.complete_body(change.fields, current)
            kind.check_update(body, current=current)
        if store is not None:  # the intent, before the request: a later try knows what may have landed
            store.set(
                f"intent:{entry['key']}", {"digest": entry["digest"], "at": time.time(), "try": self._try}
            )
        self.hook_for(kind).send(kind.update_request(change.id), json_body=body)
        self.log.info("%s written.", entry["key"])
        return APPLIED


class RolloutVerifySensor(RolloutTask, BaseSensorOperator):
    """
    Wait until every object of this wave and of the waves before it shows its desired fields
    (secrets are not compared): the earlier waves are checked again, so that an object reverted since
    (by someone, or by a rollback before the run was cleared) is not taken as applied. In the
    triggerer with ``deferrable`` (one trigger reads them all through the request budget), else by
    poking. A timeout fails the task (no retry), which rolls the rollout back.

    :param wave: the 1-based wave number.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    """

    ui_color = "#e6f1f2"

    def __init__(
        self,
        *,
        wave: int,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wave = wave
        self.deferrable = deferrable

    def _targets(self, context: Context) -> dict[str, tuple[Change, dict[str, Any]]]:
        plan = self.pulled_plan(context)
        if plan is None:
            raise AirflowFailException(f"task {self.plan_task_id!r} left no plan")
        entries = [entry for entry in plan["entries"] if entry["wave"] <= self.wave]
        targets = {}
        for entry, change in self.planned(context, entries):
            expected = expected_fields(change)
            if expected:
                targets[entry["key"]] = (change, expected)
        return targets

    def execute(self, context: Context) -> Any:
        self._pending = self._targets(context)
        self._deadline = time.time() + self.timeout
        if not self._pending:
            self.log.info("Wave %d has nothing to verify.", self.wave)
            return None
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_fluents_tines.triggers.wave import WaveStateTrigger

        objects = [
            {
                "key": key,
                "conn_id": self.conn_ids[change.kind.split(".", 1)[0]],
                "object_kind": change.kind,
                "object_id": change.id,
                "expected": expected,
            }
            for key, (change, expected) in self._pending.items()
        ]
        self.defer(
            trigger=WaveStateTrigger(
                objects=objects,
                end_time=self._deadline,
                poke_interval=self.poke_interval,
                hook_params=self.hook_params,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + 60),
        )

    def poke(self, context: Context) -> bool:
        deadline = getattr(self, "_deadline", None)
        for key, (change, expected) in list(self._pending.items()):
            if deadline is not None and time.time() >= deadline:
                break  # no read starts after the wait's deadline
            try:
                current = self.read(change, deadline=deadline)
            except ApiRequestError as err:
                if not err.retryable and err.http_status != 404:
                    raise
                self.log.warning("%s; reading it again at the next poke.", err)
                continue
            if not change.object_kind.state_differences(current, expected):
                del self._pending[key]
        if self._pending:
            self.log.info(
                "Waiting on %d object(s): %s", len(self._pending), ", ".join(sorted(self._pending))[:500]
            )
        return not self._pending

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        if event["status"] == "success":
            self.log.info("Every object of wave %d shows its desired state.", self.wave)
            return
        if event["status"] == "timeout":
            pending = event.get("pending") or {}
            shown = "; ".join(
                f"{key}: " + ", ".join(str(d.get("field")) for d in found) for key, found in pending.items()
            )
            raise AirflowSensorTimeout(
                f"Wave {self.wave} did not show its desired state in time: {shown[:2000]}"
            )
        error = AirflowException if event.get("retryable") else AirflowFailException
        raise error(event.get("message") or "the trigger failed")


def expected_fields(change: Change) -> dict[str, Any]:
    """What a verification compares: the desired fields but secrets (never compared in the open)."""
    return {name: value for name, value in without_sensitive(change.fields).items() if value != {}}


def linked_ids(changes: Sequence[Change]) -> dict[str, set[Any]]:
    """
    For each change, by key: the ids of the other objects of its kind that it links to, or whose
    changes link to it (Tines links are symmetric). One pass over the links (a rollout of 1,000
    changes asked each change of each other one, a million times).
    """
    links = {change.key: change.object_kind.links_to(change.fields) for change in changes}
    found: dict[str, set[Any]] = {change.key: set(links[change.key]) for change in changes}
    for change in changes:
        for target in links[change.key]:
            other = found.get(f"{change.kind}:{target}")
            if other is not None:
                other.add(change.id)
    for change in changes:
        found[change.key].discard(change.id)
    return found


def _planned_change(entry: PlanEntry) -> Change:
    """The change a plan entry was made for, its desired values unsealed (a secret not kept stays starred)."""
    desired, _ = unseal(entry.get("desired") or {})
    return Change(entry["kind"], entry["id"], desired)


def _truthy(value: Any) -> bool:
    """A flag that may have been rendered from a template ("True", "false")."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _task_states(context: Context, task_ids: Sequence[str]) -> dict[str, str] | None:
    """The states of ``task_ids`` in this run (mapped tasks as ``task_id_N``), or None where not available."""
    ti = context["ti"]
    get_task_states = getattr(ti, "get_task_states", None)
    if get_task_states is None:
        return None
    found = get_task_states(dag_id=ti.dag_id, task_ids=list(task_ids), run_ids=[ti.run_id])
    return {name: str(state) for name, state in (found.get(ti.run_id) or {}).items()}


def _failed_tasks(states: Mapping[str, str]) -> list[str]:
    return sorted(name for name, state in states.items() if state in _FAILED_STATES)


def _stopped_waves(task: BaseOperator, states: Mapping[str, str]) -> list[str]:
    """
    The apply and verify tasks upstream of ``task`` left skipped: a run marked failed from the UI
    skips every task not running at that moment, so a wave between two tries (its first try's
    write may have landed) ends skipped, not failed. The rollout was stopped: that is a failure.
    """
    return sorted(
        upstream.task_id
        for upstream in task.upstream_list
        if isinstance(upstream, (RolloutApplyOperator, RolloutVerifySensor))
        and states.get(upstream.task_id) == "skipped"
    )


class RolloutRollbackOperator(RolloutTask):
    """
    Restore the snapshot when anything upstream failed, once all of it has finished (``Rollout``
    makes it a teardown of the plan).

    It skips itself when nothing failed (a wave task left skipped, by a run marked failed, counts
    as a failure), or when no wave started. Otherwise it takes every planned
    object of every wave that started (in this attempt, or an earlier one of a cleared run), reads
    it, and restores the snapshot by read-compare-write: a field not showing its snapshot value
    exactly but showing the value the rollout wrote (kept in the plan) is restored; one showing
    neither was changed by someone else, and is left alone and reported as a conflict (unless
    ``on_conflict="overwrite"``). Then it reads the objects again for ``settle_seconds``, restoring
    again if a late write lands; a value still moving at the end is reported unsettled.

    Pushes under ``report`` one ``{key, status, fields, message}`` per object, status one of
    ``restored``, ``untouched``, ``conflict``, ``unrestorable``, ``unsettled`` or ``failed``, and
    fails when any object is not back at its snapshot.

    :param apply_task_ids: the apply task of each wave, in order.
    :param on_conflict: ``"skip"`` (default) or ``"overwrite"``.
    :param settle_seconds: how long to watch for late writes; None: the longest a write may take
        (``max_retry_wait`` plus ``timeout`` of the hooks' settings) plus the visibility lag.
    :param visibility_lag: seconds a write may take to show in reads; None: the largest of the
        connections' ``visibility_lag`` extras (10 s when not set).
    :param settle_interval: seconds between reads while settling.
    """

    ui_color = "#f5b7b1"

    def __init__(
        self,
        *,
        apply_task_ids: Sequence[str],
        on_conflict: str = "skip",
        settle_seconds: float | None = None,
        visibility_lag: float | None = None,
        settle_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_conflict not in ("skip", "overwrite"):
            raise validation.invalid("on_conflict", f"must be 'skip' or 'overwrite', got {on_conflict!r}")
        for name, value, minimum in (
            ("settle_seconds", settle_seconds, 0.0),
            ("visibility_lag", visibility_lag, 0.0),
            ("settle_interval", settle_interval, 0.01),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum
            ):
                raise validation.invalid(name, f"must be a number of seconds >= {minimum:g}, got {value!r}")
        self.apply_task_ids = list(apply_task_ids)
        self.on_conflict = on_conflict
        self.settle_seconds = settle_seconds
        self.visibility_lag = visibility_lag
        self.settle_interval = settle_interval

    def execute(self, context: Context) -> list[dict[str, Any]]:
        watched = sorted(self.upstream_task_ids)
        states = _task_states(context, watched)
        if (
            states is None
        ):  # fail closed: restoring a rollout that succeeded would be a write nobody asked for
            raise AirflowFailException(
                "Cannot read this run's task states (this Airflow's Task SDK has no get_task_states); "
                "restore by hand from the plan's snapshot if the rollout failed."
            )
        stopped = _stopped_waves(self, states)
        if not _failed_tasks(states) and not stopped:
            raise AirflowSkipException("Nothing failed: nothing to roll back.")
        if stopped:
            self.log.warning("The rollout was stopped before %s ran: rolling back.", ", ".join(stopped))
        plan = self.pulled_plan(context)
        if plan is None:
            raise AirflowSkipException("The plan did not finish: nothing was written, nothing to roll back.")
        ti = context["ti"]
        maybe_written: dict[str, bool] = {}
        started = set()
        for wave, task_id in enumerate(self.apply_task_ids, 1):
            # Started in this attempt, or in an earlier attempt of a cleared run (its copy of the
            # snapshot stays in XCom until the task runs again).
            copy = ti.xcom_pull(task_ids=task_id, key=SNAPSHOT_XCOM_KEY)
            if states.get(task_id) not in _RAN_STATES and not copy:
                continue
            started.add(wave)
            results = ti.xcom_pull(task_ids=task_id, key=RESULTS_XCOM_KEY)
            by_key = {row["key"]: row for row in results or [] if isinstance(row, Mapping)}
            for entry in plan["entries"]:
                if entry["wave"] != wave:
                    continue
                row = by_key.get(entry["key"])
                # No result: the task died before recording one, so any write may have been sent. A
                # result says whether this try, or an earlier one, may have written the object: one it
                # found in state that no try wrote was set so by someone else (a conflict if it moved).
                maybe_written[entry["key"]] = row is None or bool(row.get("maybe_written"))
        entries = [entry for entry in plan["entries"] if entry["wave"] in started]
        if not entries:
            raise AirflowSkipException("No wave started: nothing was written, nothing to roll back.")
        # What the rollout wrote comes from the plan, not from changes rendered again (a DAG file edited
        # or a Variable changed during a failing rollout must not stop the way back).
        rows = self._roll_back(entries, maybe_written)
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=rows)
        self.log.info("Rollback report:\n%s", report.report_table(rows))
        left = [row for row in rows if row["status"] not in (RESTORED, UNTOUCHED)]
        if left:
            # Only failed requests are worth a retry of the rollback (it is idempotent): conflicts,
            # unrestorable and unsettled fields would come out the same.
            retryable = any(row["status"] == FAILED and row.get("retryable") for row in left)
            raise (AirflowException if retryable else AirflowFailException)(
                f"The rollback left {len(left)} object(s) not at their snapshot: "
                + "; ".join(f"{row['key']} {row['status']}: {row['message']}" for row in left)[:3000]
            )
        return rows

    def lag(self, kinds: Sequence[ObjectKind]) -> float:
        """Seconds a write may take to show: the argument, else the largest of the connections'."""
        if self.visibility_lag is not None:
            return self.visibility_lag
        return max(self.hook_for(kind).settings.visibility_lag for kind in kinds)

    def settle_window(self, kinds: Sequence[ObjectKind]) -> float:
        if self.settle_seconds is not None:
            return self.settle_seconds
        longest = max(
            self.hook_for(kind).settings.retry_policy.max_retry_wait + self.hook_for(kind).settings.timeout
            for kind in kinds
        )
        return longest + self.lag(kinds)

    def _roll_back(self, entries: list[PlanEntry], maybe_written: Mapping[str, bool]) -> list[dict[str, Any]]:
        state: dict[str, dict[str, Any]] = {}
        snapshots: dict[str, dict[str, Any]] = {}
        paired: list[tuple[PlanEntry, Change]] = []
        broken: list[dict[str, Any]] = []
        for entry in entries:
            try:  # one object whose stored values cannot be read does not stop the others' way back
                snapshots[entry["key"]], lost = unseal(entry["snapshot"])
                change = _planned_change(entry)
            except Exception as err:
                broken.append(
                    {
                        "key": entry["key"],
                        "status": FAILED,
                        "fields": sorted(entry["snapshot"]),
                        "message": f"its snapshot cannot be read ({type(err).__name__}: {err}); restore it by hand",
                        "retryable": False,
                    }
                )
                continue
            for name in lost:
                entry["unrestorable"].setdefault(name, "holds a secret not kept (no Fernet key)")
            paired.append((entry, change))
            state[entry["key"]] = {
                "wrote_at": None,
                "ours": [],
                "conflicts": {},
                "error": "",
                "retryable": False,
                "maybe_written": maybe_written.get(entry["key"], True),
            }
        if not paired:
            return broken
        linked = linked_ids([change for _, change in paired])
        for entry, _ in paired:
            state[entry["key"]]["linked"] = linked[entry["key"]]
        kinds = [change.object_kind for _, change in paired]
        settle = self.settle_window(kinds)
        self._lag = self.lag(kinds)
        started = time.monotonic()
        self._pass(paired, snapshots, state, write=True)
        ends = time.monotonic() + settle
        # A restore must have time to show before it is judged; a value that keeps moving is not
        # chased past twice the window.
        hard_end = ends + settle + self._lag
        self.log.info(
            "First pass done in %.1f s; watching for late writes for %.0f s.", ends - settle - started, settle
        )
        while True:
            writes = [record["wrote_at"] for record in state.values() if record["wrote_at"] is not None]
            if writes:
                ends = min(hard_end, max(ends, max(writes) + self._lag))
            left = ends - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(self.settle_interval, left))
            self._pass(paired, snapshots, state, write=True)
        self._pass(paired, snapshots, state, write=False)  # what is left, after the last restore
        rows = []
        for entry, _ in paired:
            record = state[entry["key"]]
            written = record["wrote_at"] is not None or record["maybe_written"]
            # An unrestorable field the rollout may have written, and no read shows it changed back.
            changed_unrestorable = [
                name
                for name in entry["unrestorable"]
                if written and record.get("observed_changed", {}).get(name)
            ]
            if record["error"]:
                status, message = FAILED, record["error"]
            elif record["ours"]:
                status, message = UNSETTLED, f"{', '.join(record['ours'])} still differ(s) from the snapshot"
            elif record["conflicts"]:
                status = CONFLICT
                message = "; ".join(f"{name} {why}" for name, why in record["conflicts"].items())
            elif changed_unrestorable:
                status = UNRESTORABLE
                message = "; ".join(f"{name} {entry['unrestorable'][name]}" for name in changed_unrestorable)
            elif written:
                status, message = RESTORED, ""
            else:
                status, message = UNTOUCHED, ""
            rows.append(
                {
                    "key": entry["key"],
                    "status": status,
                    "fields": sorted(entry["snapshot"]),
                    "message": message,
                    "retryable": status == FAILED and record["retryable"],
                }
            )
        return rows + broken

    def _pass(
        self,
        paired: list[tuple[PlanEntry, Change]],
        snapshots: Mapping[str, dict[str, Any]],
        state: dict[str, dict[str, Any]],
        *,
        write: bool,
    ) -> None:
        """
        Read every object once; restore (with ``write``) each field showing the rollout's value. An
        object restored less than ``visibility_lag`` ago is not read: a read may not show the restore yet.
        """
        for entry, change in paired:
            record = state[entry["key"]]
            if write and record["wrote_at"] is not None and time.monotonic() - record["wrote_at"] < self._lag:
                continue
            kind = change.object_kind
            try:
                current = self.read(change)
            except ApiRequestError as err:
                record["error"], record["retryable"] = str(err), err.retryable
                self.log.warning("%s: %s", entry["key"], err)
                continue
            observed = kind.normalize(current)
            decision = restore(
                change,
                snapshots[entry["key"]],
                observed,
                overwrite=self.on_conflict == "overwrite",
                maybe_written=record["maybe_written"],
                linked=record["linked"],
            )
            record["conflicts"] = decision.conflicts
            # The fields still to restore: the rollout's values (and, with overwrite, anyone's).
            record["ours"] = sorted(decision.body)
            record["observed_changed"] = {
                name: may_hold_desired(kind, name, change.fields, observed) for name in entry["unrestorable"]
            }
            if not decision.body:
                record["error"] = ""  # nothing left to write: an earlier failed write no longer matters
                continue
            if not write:
                continue
            try:
                body = kind.complete_body(decision.body, current)
                kind.check_update(body, current=current)
                self.hook_for(kind).send(kind.update_request(change.id), json_body=body)
            except (ApiRequestError, InvalidFieldError) as err:
                record["error"] = str(err)
                record["retryable"] = isinstance(err, ApiRequestError) and err.retryable
                self.log.warning("%s: %s", entry["key"], err)
                continue
            record["wrote_at"] = time.monotonic()
            record["ours"], record["error"] = [], ""
            self.log.info("%s: restored %s.", entry["key"], ", ".join(sorted(decision.body)))


class RolloutResultOperator(RolloutTask):
    """
    The rollout's last task (a teardown of the plan, after the rollback, so that it runs even in a run
    marked failed): fails the run when any task of the rollout (or any task
    given to ``Rollout.guard``) failed, naming them, so that a run whose rollback succeeded still
    ends failed. In a cleared run it also reads every object again, and fails unless each shows its
    desired state (a rollback of an earlier attempt may have restored what succeeded tasks applied).
    """

    ui_color = "#eaeded"

    def execute(self, context: Context) -> None:
        states = _task_states(context, sorted({*self.upstream_task_ids, self.plan_task_id}))
        if states is None:
            raise AirflowFailException(
                "Cannot read this run's task states: the rollout's outcome is unknown."
            )
        if states.get(self.plan_task_id) == "skipped":
            raise AirflowSkipException("The rollout was skipped (its plan did not run).")
        failed = sorted(name for name, state in states.items() if state == "failed")
        stopped = _stopped_waves(self, states)
        if stopped and states.get(self.plan_task_id) == "success":
            failed += [f"{name} skipped: the run was stopped" for name in stopped]
        if failed or _failed_tasks(states):
            rollback = next((name for name in states if name.endswith("rollback")), None)
            how = f"; the rollback {states[rollback]}" if rollback else ""
            raise AirflowFailException(
                f"The rollout failed ({', '.join(failed) or 'upstream of it'}){how}. See the rollback's report."
            )
        if getattr(context.get("dag_run"), "clear_number", None) != 0:
            self._check_still_applied(context)
        self.log.info("The rollout succeeded: every wave applied and verified.")

    def _check_still_applied(self, context: Context) -> None:
        """
        In a cleared run, tasks that succeeded in an earlier attempt keep their state: a rollback of
        that attempt may have restored objects since (and a smoke test cleared alone then passes on
        the old state). Every object must show its desired state again for the rollout to succeed.
        """
        plan = self.pulled_plan(context)
        if plan is None:
            raise AirflowFailException(f"task {self.plan_task_id!r} left no plan")
        behind = []
        for entry in plan["entries"]:
            change = _planned_change(entry)
            expected = expected_fields(change)
            if expected and change.object_kind.state_differences(self.read(change), expected):
                behind.append(entry["key"])
        if behind:
            raise AirflowFailException(
                f"This run was cleared, and {len(behind)} object(s) no longer show their desired state "
                f"(a rollback of an earlier attempt may have restored them): {', '.join(behind)[:2000]}. "
                "Clear the rollout's plan with its downstream tasks to apply it again."
            )
        self.log.info("This run was cleared: every object read again shows its desired state.")


__all__ = [
    "DriftCheckOperator",
    "RolloutApplyOperator",
    "RolloutPlanOperator",
    "RolloutResultOperator",
    "RolloutRollbackOperator",
    "RolloutVerifySensor",
]
