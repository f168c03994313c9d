"""
The update flow shared by every update operator, written once:
validate -> read -> compare -> (dry run | already up to date | record previous values -> write).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from airflow.sdk import BaseOperator

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.matching import (
    Difference,
    FieldDifference,
    differences,
    format_differences,
    leaf_differences,
)
from airflow_provider_fluents_tines.object_task import ObjectTaskMixin
from airflow_provider_fluents_tines.redaction import (
    REDACTED,
    mask_sensitive,
    redact,
    seal,
    sensitive_values,
    shown_value,
    unseal,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: XCom key of a :class:`PreviousValues` record, pushed before each write.
PREVIOUS_VALUES_XCOM_KEY = "previous_values"
#: XCom key of what a write left: ``{"object_id", "fields": {field: value the update answered}}``, for
#: a rollback's conflict check (pushed after the write; secrets sealed as in ``previous_values``).
WRITTEN_VALUES_XCOM_KEY = "written_values"
#: XCom key of the :class:`PlannedRequest` a dry run would have sent.
PLANNED_REQUEST_XCOM_KEY = "planned_request"
#: XCom key of a dry run's field-by-field diff: a list of :class:`~matching.FieldDifference`.
DIFF_XCOM_KEY = "diff"


class PreviousValues(TypedDict):
    """What restores one object: its id and each changed field's value before the write (secrets sealed)."""

    object_id: Any
    fields: dict[str, Any]


class PlannedRequest(TypedDict):
    """The update a dry run would have sent (secrets starred in the body)."""

    method: str
    path: str
    params: dict[str, Any]
    body: dict[str, Any]


class _NotGiven:
    """The default of every field argument: "leave this field alone", as opposed to an explicit None."""

    _instance: ClassVar[_NotGiven | None] = None

    def __new__(cls) -> _NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> _NotGiven:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _NotGiven:
        return self

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()


class BaseUpdateOperator(ObjectTaskMixin, BaseOperator):
    """
    Partially update one API object, reading it first.

    Only the fields given are sent. When every given field already has the requested value,
    nothing is written (unless ``force``). Before a write, the previous values of the fields
    that change are pushed to XCom under ``previous_values``; an operator given
    ``restore_from=<task_id>`` reads them back and writes them, which is the rollback.
    The updated (or current) object is the task's return value.

    :param dry_run: read and log the field-by-field diff, push ``planned_request`` and ``diff``
        to XCom, and write nothing.
    :param force: write even when the object already shows every requested value.
    :param restore_from: restore the fields that task changed on this object (its
        ``previous_values`` XCom); takes no field arguments. Mapped tasks are matched by object id.
    :param allow_unrestorable_secrets: without a Fernet key (``[core] fernet_key``), a change to a field
        holding a secret (a Tines webhook's ``options.secret``) is refused, since its old value could
        only be kept in the clear; with this flag the change is made and the old secret is not kept
        (a rollback then refuses to restore that field).
    :param on_conflict: with ``restore_from``, what to do with a field that shows neither its old value
        nor the value that task wrote (someone else changed it since): ``"skip"`` (default) leaves it
        alone, restores the rest and fails the task naming it; ``"overwrite"`` restores it anyway.
    :param hook_params: settings for this task's hook, over the connection's extras: ``timeout``,
        ``max_attempts``, ``max_retry_wait`` and ``retry_policy`` (a dict of its fields).

    Secrets (values under keys Airflow's masker deems sensitive) are shown as ``***`` in logs, in
    the returned object and in the ``diff`` and ``planned_request`` XComs; in ``previous_values``
    they are Fernet-encrypted.
    """

    ui_color = "#d6eaf8"
    #: operator attribute -> API field, for every updatable field.
    field_arguments: ClassVar[Mapping[str, str]]

    def __init__(
        self,
        *,
        dry_run: bool = False,
        force: bool = False,
        restore_from: str | None = None,
        allow_unrestorable_secrets: bool = False,
        on_conflict: str = "skip",
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if on_conflict not in ("skip", "overwrite"):
            raise validation.invalid("on_conflict", f"must be 'skip' or 'overwrite', got {on_conflict!r}")
        self.on_conflict = on_conflict
        self.hook_params = hook_params
        self.allow_unrestorable_secrets = allow_unrestorable_secrets
        # BaseOperator.dry_run() is a method (template rendering); keep the flag under another name.
        self.is_dry_run = dry_run
        self.force = force
        self.restore_from = restore_from

    def previous_values(self, changed: Sequence[str], observed: Mapping[str, Any]) -> dict[str, Any]:
        """
        What restores the ``changed`` fields: their observed values and their companions' (the
        object kind says which, and in which form).

        A field the API did not show has no known previous value: it is left out (a rollback
        cannot restore it), and said so in the log, rather than recorded as None. So is a value the
        update API cannot write back.
        """
        names = self.object_kind.restored_fields(changed, observed)
        unknown = [name for name in names if name not in observed]
        if unknown:
            self.log.warning(
                "The API did not show %s before the write: a rollback cannot restore it.", unknown
            )
        previous = {name: observed[name] for name in names if name in observed}
        for name, why in self.object_kind.unrestorable(previous).items():
            del previous[name]
            self.log.warning("%s %s.", name, why)
        return previous

    # ---- the flow --------------------------------------------------------------------------------

    def given_fields(self) -> dict[str, Any]:
        """The field arguments given, by API field name, in the API's types."""
        return self.object_kind.prepare_fields(
            {
                api_field: getattr(self, argument)
                for argument, api_field in self.field_arguments.items()
                if getattr(self, argument) is not NOT_GIVEN
            }
        )

    def execute(self, context: Context) -> dict[str, Any]:
        kind = self.object_kind
        object_id = self.object_id()
        given = self.given_fields()
        if self.restore_from:
            if given:
                raise validation.invalid(
                    "restore_from", f"cannot be combined with field arguments ({', '.join(sorted(given))})"
                )
            restored, written = self._restored_fields(context, object_id)
            if restored is None:
                self.log.info(
                    "Task %r changed nothing on %s %s: nothing to restore.",
                    self.restore_from,
                    kind.noun,
                    shown_value(object_id),
                )
                return self._returned(self.hook.get_object(kind, object_id))
            given = restored
        else:
            written = None
            if not given:
                raise validation.invalid("fields", "give at least one field to update (or restore_from)")
        # The rules the given fields break on their own: refused before any request.
        kind.check_given(given)
        mask_sensitive(given)

        current = self.hook.get_object(kind, object_id)
        mask_sensitive(current)
        # The rules the object as read decides (its type), whether or not anything is written.
        kind.check_given(given, current=current)
        observed = kind.normalize(current)
        conflicts: dict[str, str] = {}
        if written is not None and self.on_conflict == "skip":
            given, conflicts = self._without_conflicts(given, written, observed)
        changes = differences(given, observed, subset=False)
        # Read-modify-write: the body to send, and every rule on it, before it is shown or sent.
        body = kind.complete_body(given, current)
        if changes or self.force or self.is_dry_run:
            kind.check_update(body, current=current)
        update = kind.update_request(object_id)

        if self.is_dry_run:
            from airflow_provider_fluents_tines.hooks.base import shown_path

            diff: list[FieldDifference] = [change.as_dict() for change in changes]
            method, path, params = update
            planned: PlannedRequest = {"method": method, "path": path, "params": params, "body": redact(body)}
            self.log.info(
                "Dry run, nothing written. Would send %s %s with body %s",
                method,
                shown_path(path, params),
                json.dumps(planned["body"], sort_keys=True, default=str),
            )
            self._log_diff(object_id, changes)
            context["ti"].xcom_push(key=PLANNED_REQUEST_XCOM_KEY, value=planned)
            context["ti"].xcom_push(key=DIFF_XCOM_KEY, value=diff)
            for message in conflicts.values():
                self.log.warning("Dry run: a rollback would leave %s", message)
            return self._returned(current)
        if not changes and not self.force:
            self.log.info(
                "%s %s is already up to date; nothing written.",
                kind.noun.capitalize(),
                shown_value(object_id),
            )
            unchanged: PreviousValues = {"object_id": object_id, "fields": {}}
            context["ti"].xcom_push(key=PREVIOUS_VALUES_XCOM_KEY, value=unchanged)
            self._fail_on(conflicts)
            return self._returned(current)

        previous: PreviousValues = {
            "object_id": object_id,
            "fields": self._sealed(self.previous_values([change.path for change in changes], observed)),
        }
        # Pushed before the write: if the write lands and the task then dies, the way back is known.
        context["ti"].xcom_push(key=PREVIOUS_VALUES_XCOM_KEY, value=previous)
        self._log_diff(object_id, changes)
        answer = self.hook.send(update, json_body=body)
        after = kind.normalize(kind.as_update_answer(answer))
        left: PreviousValues = {
            "object_id": object_id,
            "fields": self._sealed({name: after[name] for name in previous["fields"] if name in after}),
        }
        context["ti"].xcom_push(key=WRITTEN_VALUES_XCOM_KEY, value=left)
        self._fail_on(conflicts)
        return self._returned(answer)

    def _without_conflicts(
        self, restored: dict[str, Any], written: Mapping[str, Any], observed: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """
        The restored fields without those someone else changed since the write (they show neither
        the old value nor the written one, by the sensors' matcher), and without the fields the API
        takes only together with those; each left out -> why.
        """

        def shows(name: str, value: Any) -> bool:
            return not differences({name: value}, observed, subset=True)

        conflicts = {
            name: f"{name} alone: changed by someone else since task {self.restore_from!r} wrote it"
            for name, value in restored.items()
            if name in written and not shows(name, value) and not shows(name, written[name])
        }
        companions = self.object_kind.companion_fields
        for name in list(conflicts):
            for other in restored:
                if other not in conflicts and (
                    name in companions.get(other, ()) or other in companions.get(name, ())
                ):
                    conflicts[other] = f"{other} alone: it is restored only together with {name}"
        return {k: v for k, v in restored.items() if k not in conflicts}, conflicts

    def _fail_on(self, conflicts: Mapping[str, str]) -> None:
        if conflicts:
            from airflow_provider_fluents_tines.version_compat import AirflowFailException

            raise AirflowFailException(
                f"Rolled back all but what someone else changed; left {'; '.join(conflicts.values())}. "
                "Restore those by hand, or pass on_conflict='overwrite'."
            )

    def _returned(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The task's return value: one shape (the update's answer) whether it wrote or not, secrets starred."""
        return redact(self.object_kind.as_update_answer(obj))

    def _sealed(self, previous: dict[str, Any]) -> dict[str, Any]:
        """Previous values with their secrets Fernet-encrypted, or redacted with the opt-in."""
        sealed, unkept = seal(
            previous, allow_unkept=self.allow_unrestorable_secrets, option="allow_unrestorable_secrets"
        )
        if unkept:
            self.log.warning(
                "No Fernet key: the old secrets of %s are not kept; a rollback cannot restore them.", unkept
            )
        return sealed

    def _restored_fields(
        self, context: Context, object_id: Any
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The previous values ``restore_from`` recorded for this object, and what its write left (when known)."""
        previous = self._pulled(context, PREVIOUS_VALUES_XCOM_KEY, object_id)
        if not previous:
            return None, None
        written = self._pulled(context, WRITTEN_VALUES_XCOM_KEY, object_id)
        if written is not None:
            # A secret not kept cannot be compared: its field is restored without the check.
            written = {
                name: value
                for name, value in written.items()
                if REDACTED not in sensitive_values({name: value})
            }
            written = self._unsealed(written)
        return self._unsealed(previous), written

    def _pulled(self, context: Context, key: str, object_id: Any) -> dict[str, Any] | None:
        pulled = context["ti"].xcom_pull(task_ids=self.restore_from, key=key)
        entries = pulled if isinstance(pulled, (list, tuple)) else [pulled]
        for entry in entries:
            if isinstance(entry, Mapping) and str(entry.get("object_id")) == str(object_id):
                return dict(entry["fields"])
        return None

    def _unsealed(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`_sealed`; a secret that was not kept makes its field unrestorable."""
        try:
            values, lost = unseal(fields)
        except ValueError as err:
            raise validation.invalid("restore_from", str(err)) from None
        if lost:
            raise validation.invalid(
                "restore_from",
                f"the old secrets in {', '.join(lost)} were not kept (no Fernet key when {self.restore_from!r} "
                "ran): restore them by hand",
            )
        return values

    def _log_diff(self, object_id: Any, changes: list[Difference]) -> None:
        if changes:
            self.log.info(
                "%s %s: %s",
                self.object_kind.noun.capitalize(),
                shown_value(object_id),
                format_differences(leaf_differences(changes), limit=50),
            )
        else:
            self.log.info(
                "%s %s: no field changes (write forced).",
                self.object_kind.noun.capitalize(),
                shown_value(object_id),
            )
