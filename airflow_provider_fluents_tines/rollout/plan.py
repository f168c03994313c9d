"""
The plan of a rollout and the way back from it, as pure functions over objects already read: what
each change alters, the snapshot that restores it, and what a rollback must write. No requests,
no Airflow: the tasks in ``rollout.tasks`` read and write around these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

from airflow_provider_fluents_tines.matching import FieldDifference, differences, leaf_differences
from airflow_provider_fluents_tines.redaction import redact
from airflow_provider_fluents_tines.rollout.changes import Change
from airflow_provider_fluents_tines.validation import Problem, raise_for

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.objects import ObjectKind

#: A plan entry's status: the object differs from the desired state, or shows it already.
CHANGE, IN_STATE = "change", "in_state"


class PlanEntry(TypedDict):
    """One object in the plan (pushed to XCom; values shown starred, the snapshot sealed)."""

    key: str
    kind: str
    id: Any
    #: 1-based wave number.
    wave: int
    #: :meth:`Change.digest` of the desired state the plan was made for.
    digest: str
    status: str
    #: what will change, field by field (secrets starred).
    diff: list[FieldDifference]
    #: field -> its value before the rollout, for every field the rollback may write (secrets sealed).
    snapshot: dict[str, Any]
    #: field -> why the rollback cannot restore it.
    unrestorable: dict[str, str]
    #: the desired fields the plan was made for (secrets sealed): the rollback's "value we wrote",
    #: so that it needs nothing rendered again.
    desired: dict[str, Any]


class Plan(TypedDict):
    """What the plan task returns: every object, in wave order, and the wave sizes."""

    entries: list[PlanEntry]
    waves: list[int]
    #: when the snapshot was taken (ISO 8601) and by which try of the plan task.
    taken_at: str
    taken_by_try: int


def plan_entry(change: Change, current: Mapping[str, Any], wave: int, where: str) -> PlanEntry:
    """
    The plan of one change against the object as read: its diff and its snapshot (the values the
    way back needs, ``null`` included), with the fields the API cannot take back set apart.

    :param where: names the change in errors (``changes[3]``).
    :raises InvalidFieldError: the change breaks a rule the object as read decides (its type), or
        the body it would send breaks one.
    """
    kind = change.object_kind
    fields = dict(change.fields)
    _raise_at(where, kind.update_problems(fields, current=current, complete=False))
    observed = kind.normalize(current)
    found = differences(fields, observed, subset=False)
    _raise_at(where, kind.update_problems(kind.complete_body(fields, current), current=current))
    changed = [difference.path for difference in found]
    names = kind.restored_fields(changed, observed)
    snapshot = {name: observed[name] for name in names if name in observed}
    unrestorable = kind.unrestorable(snapshot)
    for name in unrestorable:
        del snapshot[name]
    for name in names:
        if name not in observed:
            unrestorable[name] = "is not shown by the API, so its value before the rollout is unknown"
    return {
        "key": change.key,
        "kind": change.kind,
        "id": change.id,
        "wave": wave,
        "digest": change.digest(),
        "status": CHANGE if found else IN_STATE,
        "diff": [redact(difference.as_dict()) for difference in leaf_differences(found)],
        "snapshot": snapshot,
        "unrestorable": unrestorable,
        "desired": dict(fields),
    }


def may_hold_desired(
    kind: ObjectKind, name: str, desired: Mapping[str, Any], observed: Mapping[str, Any]
) -> bool:
    """
    Whether the snapshot field ``name`` may still show what the rollout wrote: it shows a desired
    value it restores, or nobody can tell (the API does not show it, or the desired value is a secret
    that was not kept). Used for unrestorable fields: only a read showing otherwise clears them.
    """
    if name not in observed:
        return True
    written = [other for other in desired if name in kind.restored_fields([other], observed)]
    if not written:
        return True
    return any(not differences({other: desired[other]}, observed, subset=True) for other in written)


def _raise_at(where: str, problems: list[Problem]) -> None:
    raise_for([Problem(f"{where}.fields.{problem.field}", problem.rule) for problem in problems])


class Restore(NamedTuple):
    """What a rollback does to one object, as it shows now."""

    #: field -> snapshot value to write (with the fields the API takes only together with them).
    body: dict[str, Any]
    #: field -> why it is left alone (someone else changed it, or it goes only with such a field).
    conflicts: dict[str, str]


def restore(
    change: Change,
    snapshot: Mapping[str, Any],
    observed: Mapping[str, Any],
    *,
    overwrite: bool = False,
    maybe_written: bool = True,
    linked: set[Any] | None = None,
) -> Restore:
    """
    Read-compare-write, the compare: each snapshot field that does not show its snapshot value
    exactly but shows the value the rollout wrote (the sensors' partial match) is restored; one that
    shows neither was changed by someone else and is left alone (with ``overwrite``, restored anyway).

    :param snapshot: the plan's snapshot for the object, unsealed.
    :param observed: the object as read now, normalized by its kind.
    :param maybe_written: whether the rollout may have written the object; when it surely did not,
        a field showing the desired value was set so by someone else (a conflict).
    :param linked: ids of other objects in the rollout whose changes move this one's links (Tines
        links are symmetric): links to them are the rollout's own doing, not compared.
    """
    kind = change.object_kind
    # Without the links the rollout's other changes make to this object (Tines links are symmetric):
    # a field that differs only by those is the rollout's doing, restored, never a conflict.
    unlinked = kind.without_links_to(observed, linked) if linked else None
    unlinked_snapshot = kind.without_links_to(snapshot, linked) if linked else {}
    unlinked_desired = kind.without_links_to(change.fields, linked) if linked else {}
    # The snapshot names the restored form of each desired field (Tines source_ids -> links_to_sources).
    written_as: dict[str, str] = {}
    for name in change.fields:
        restored_names = kind.restored_fields([name], snapshot)
        if restored_names:
            written_as.setdefault(restored_names[0], name)

    def shows(name: str, value: Any, *, exactly: bool) -> bool:
        return not differences({name: value}, observed, subset=not exactly)

    def ours_by_links(name: str, desired_name: str) -> bool:
        if unlinked is None:
            return False
        return not differences(
            {desired_name: unlinked_desired[desired_name]}, unlinked, subset=True
        ) or not differences({name: unlinked_snapshot[name]}, unlinked, subset=False)

    conflicts: dict[str, str] = {}
    to_write: list[str] = []
    for name, old in snapshot.items():
        # The snapshot is the whole old value: an object "at" it shows it exactly (a dict with a key
        # added since is not). The desired value may be partial: matched as sensors match.
        if shows(name, old, exactly=True):
            continue
        desired_name = written_as.get(name)
        if (
            maybe_written
            and desired_name is not None
            and (
                shows(desired_name, change.fields[desired_name], exactly=False)
                or ours_by_links(name, desired_name)
            )
        ) or overwrite:
            to_write.append(name)
        else:
            conflicts[name] = "changed by someone else since the rollout wrote it"
    companions = kind.companion_fields
    pending = list(conflicts)
    while pending:  # a field the API takes only together with a conflicting one stays too
        name = pending.pop()
        for other in to_write:
            if other not in conflicts and (
                name in companions.get(other, ()) or other in companions.get(name, ())
            ):
                conflicts[other] = f"is restored only together with {name}, which is left alone"
                pending.append(other)
    to_write = [name for name in to_write if name not in conflicts]
    for name in list(to_write):  # the API takes these only with their companions: send those too
        for other in companions.get(name, ()):
            if other in snapshot and other not in to_write and other not in conflicts:
                to_write.append(other)
    return Restore({name: snapshot[name] for name in to_write}, conflicts)
