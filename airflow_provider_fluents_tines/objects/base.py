"""What every kind of API object is described by, for hooks, operators, sensors and the trigger alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from airflow_provider_fluents_tines.matching import Difference, differences
from airflow_provider_fluents_tines.validation import Problem, raise_for, shown

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.base import BaseServiceHook


class Request(NamedTuple):
    """Method, path and query of one request (the body travels apart: only writes have one)."""

    method: str
    path: str
    params: dict[str, Any]


class ListPage(NamedTuple):
    """One page of a list endpoint's answer: its objects, the next page's number, and how many pages there are."""

    items: list[dict[str, Any]]
    #: the next page's number, None on the last page.
    next_page: int | None
    #: the number of pages the API reports, None when it does not say.
    pages: int | None


class ObjectKind(ABC):
    """
    One kind of API object (a Fluents action, a Fluents number, a Tines action): how it is
    addressed, read and updated, which rules an update must follow, how it compares with an
    expected state, and which fields a rollback restores together.

    Kinds are stateless: each module keeps one instance per kind (``TINES_ACTION``...).
    """

    #: names the kind in trigger kwargs (``"tines.action"``; see ``objects.KINDS``).
    key: ClassVar[str]
    #: the API's name, for messages.
    service: ClassVar[str]
    #: what one object is called in log lines ("action", "number").
    noun: ClassVar[str]
    #: API field -> the task argument a user writes for it, where the two differ (named in errors).
    argument_names: ClassVar[Mapping[str, str]] = {}
    #: a changed field -> fields whose previous values must be restored with it (API rules).
    companion_fields: ClassVar[Mapping[str, Sequence[str]]] = {}
    #: fields that move without anyone changing the object (timestamps, counters): an asset watcher
    #: of every field ignores them.
    volatile_fields: ClassVar[frozenset[str]] = frozenset()
    #: objects per list page the bulk reads ask for; None where this provider lists nothing.
    list_page_size: ClassVar[int | None] = None
    #: a list item carries what a GET of the object shows, in the same shape (else a match seen in
    #: a list is confirmed with a GET before a sensor succeeds on it).
    list_item_is_full: ClassVar[bool] = True

    def __repr__(self) -> str:
        return f"<ObjectKind {self.key}>"

    # ---- addressing ---------------------------------------------------------------------------------

    @abstractmethod
    def hook_class(self) -> type[BaseServiceHook]:
        """The hook that reads and writes this kind (imported on call: it brings the HTTP stack)."""

    @abstractmethod
    def object_id(self, value: Any) -> Any:
        """``value`` as the API's id of this kind, or :class:`InvalidFieldError` naming the rule."""

    @abstractmethod
    def read_request(self, object_id: Any) -> Request:
        """The GET of one object; checks the id."""

    @abstractmethod
    def update_request(self, object_id: Any) -> Request:
        """The partial update of one object (its body is the fields to change); checks the id."""

    # ---- bulk reads (the triggerer's shared poller) ------------------------------------------------

    def list_request(self, scope: Hashable | None, page: int) -> Request | None:
        """
        The GET of one page of objects in ``scope`` (``None``: every object the key sees), or None
        where this kind has no list endpoint the provider uses.
        """
        return None

    def list_page(self, answer: Mapping[str, Any], page: int) -> ListPage:
        """Page ``page`` of a list answer; :class:`ValueError` when the answer is not one."""
        raise ValueError(f"{self.service} {self.noun}s are not listed")

    def listed_id(self, item: Mapping[str, Any]) -> Any:
        """A list item's id, as :meth:`object_id` gives it; None when the item has none."""
        return None

    def scope_of(self, obj: Mapping[str, Any]) -> Hashable | None:
        """The narrowest list scope that holds ``obj`` (a Tines story); None: only the whole list."""
        return None

    # ---- the update's rules: written once per kind, on the body as it will be sent -------------------

    @abstractmethod
    def update_problems(
        self, body: Mapping[str, Any], *, current: Mapping[str, Any] | None = None, complete: bool = True
    ) -> list[Problem]:
        """
        The API rules ``body`` breaks.

        :param current: the object as read, when it was: rules that depend on it (a stored type) apply.
        :param complete: ``body`` is what will be sent. False for the given fields, which the read
            completes (:meth:`complete_body`): rules about what the read fills in do not apply.
        """

    def check_given(self, fields: Mapping[str, Any], *, current: Mapping[str, Any] | None = None) -> None:
        """
        Raise, naming the user's arguments, for rules the given fields break: on their own before
        the read (no request is made), and with ``current`` the rules the object as read decides.
        """
        raise_for(self.update_problems(fields, current=current, complete=False), self.argument_names)

    def check_update(self, body: Mapping[str, Any], *, current: Mapping[str, Any] | None = None) -> None:
        """Raise, naming the user's arguments, for every rule the body to send breaks."""
        raise_for(self.update_problems(body, current=current), self.argument_names)

    def complete_body(self, fields: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        """The body to send: the given fields and what the API needs kept from the object as read."""
        return dict(fields)

    def prepare_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The given fields in the API's types, where the API accepts several spellings (digit strings...)."""
        return dict(fields)

    # ---- reading and comparing ------------------------------------------------------------------------

    def normalize(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The object in the vocabulary of its update request, for matching and previous values."""
        return dict(obj)

    def as_update_answer(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """
        The object in the shape the update answers with, whichever call read it: what an update
        operator returns has one shape whether it wrote or not.
        """
        return dict(obj)

    def state_differences(self, obj: Mapping[str, Any], expected: Mapping[str, Any]) -> list[Difference]:
        """The expected fields ``obj`` does not show yet: the one check behind sensors and the trigger."""
        return differences(expected, self.normalize(obj), subset=True)

    def links_to(self, fields: Mapping[str, Any]) -> set[Any]:
        """Ids of other objects of this kind that writing ``fields`` changes too (symmetric links)."""
        return set()

    def without_links_to(self, fields: Mapping[str, Any], ids: set[Any]) -> dict[str, Any]:
        """``fields`` (normalized) without their links to ``ids``: what is left to compare when those
        objects' own changes may have moved them."""
        return dict(fields)

    # ---- the way back -----------------------------------------------------------------------------

    def restored_fields(self, changed: Sequence[str], observed: Mapping[str, Any]) -> list[str]:
        """
        The fields whose observed values restore the ``changed`` ones: the changed fields in the form
        that restores them, and their companions the object shows.
        """
        names = list(changed)
        for name in changed:
            names += [c for c in self.companion_fields.get(name, ()) if c in observed and c not in names]
        return names

    def unrestorable(self, previous: Mapping[str, Any]) -> dict[str, str]:
        """
        Previous values the update API cannot take back -> why (they are left out of the way back):
        a value the update's rules refuse (a ``null`` where the API wants a string), and the fields
        the API takes only together with such a value.
        """
        found: dict[str, str] = {}
        for problem in self.update_problems(previous, complete=False):
            name = problem.field.split(".", 1)[0]
            if name in previous and name not in found:
                found[name] = (
                    f"was {shown(previous[name])} before, which the update API does not take "
                    f"({problem.rule}): a rollback cannot write it back"
                )
        pending = list(found)
        while pending:  # a field the API takes only with an unrestorable one cannot be restored either
            name = pending.pop()
            for other, companions in self.companion_fields.items():
                if name in companions and other in previous and other not in found:
                    found[other] = f"is restored only together with {name}, which cannot be"
                    pending.append(other)
        return found
