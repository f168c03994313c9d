"""The Fluents Hosted API's objects: call actions and phone numbers."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.objects.base import ListPage, ObjectKind, Request
from airflow_provider_fluents_tines.validation import Problem

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.fluents import FluentsHook


class _FluentsObject(ObjectKind):
    service = "Fluents"
    # GET /v1/<objects>/list?page=&size=: pages of {"items", "page", "size", "has_more", "total"};
    # the largest size is 100 (inferred from a third party; README "Shared polling"). No filter.
    list_page_size = 100
    #: the list endpoint's path.
    list_path: str
    #: the field of a list item that holds the object's id.
    id_field = "id"

    def hook_class(self) -> type[FluentsHook]:
        from airflow_provider_fluents_tines.hooks.fluents import FluentsHook

        return FluentsHook

    def list_request(self, scope: Hashable | None, page: int) -> Request | None:
        if scope is not None:
            return None  # Fluents lists are not filtered: only the whole list exists
        return Request("GET", self.list_path, {"page": page, "size": self.list_page_size})

    def list_page(self, answer: Mapping[str, Any], page: int) -> ListPage:
        items = answer.get("items")
        if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
            raise ValueError("the answer has no list under 'items'")
        total, size = answer.get("total"), answer.get("size")
        pages = None
        if (
            isinstance(total, int)
            and isinstance(size, int)
            and size > 0
            and not answer.get("total_is_estimated")
        ):
            pages = max(1, -(-total // size))
        more = answer.get("has_more") is True and bool(items)
        return ListPage([dict(item) for item in items], page + 1 if more else None, pages)

    def listed_id(self, item: Mapping[str, Any]) -> Any:
        try:
            return self.object_id(item.get(self.id_field))
        except InvalidFieldError:
            return None


class FluentsAction(_FluentsObject):
    """A call action: ``GET /v1/actions?id=``, ``POST /v1/actions/update?id=``."""

    key = "fluents.action"
    noun = "action"
    list_path = "/v1/actions/list"
    argument_names = {"type": "action_type"}
    # The API checks config against the type, so a restored config travels with its type.
    companion_fields = {"config": ("type",)}

    def object_id(self, value: Any) -> str:
        return validation.fluents_action_id(value)

    def read_request(self, object_id: Any) -> Request:
        return Request("GET", "/v1/actions", {"id": self.object_id(object_id)})

    def update_request(self, object_id: Any) -> Request:
        return Request("POST", "/v1/actions/update", {"id": self.object_id(object_id)})

    def update_problems(
        self, body: Mapping[str, Any], *, current: Mapping[str, Any] | None = None, complete: bool = True
    ) -> list[Problem]:
        stored_type = None if current is None else current.get("type")
        if current is not None and "config" in body and "type" not in body:
            body = self.complete_body(body, current)  # config is judged by the type it will travel with
        if (
            "config" in body
            and stored_type is not None
            and body.get("type") == stored_type
            and stored_type not in validation.FLUENTS_ACTION_TYPES
        ):
            # The type came from the read (a given one was checked before it): say so, not "action_type".
            rest = {name: value for name, value in body.items() if name != "type"}
            return [
                Problem(
                    "config",
                    f"cannot be checked against the action's stored type {validation.shown(stored_type)}, "
                    "which is not an action type: give action_type with it",
                ),
                *validation.fluents_action_update_problems(rest, type_pending=True),
            ]
        # Before the read, config without a type waits for the stored type (complete_body sends it).
        return validation.fluents_action_update_problems(body, type_pending=current is None and not complete)

    def complete_body(self, fields: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        body = dict(fields)
        # The API checks config against the type: config given alone travels with the stored type.
        if "config" in body and "type" not in body and current.get("type") is not None:
            body["type"] = current["type"]
        return body


class FluentsNumber(_FluentsObject):
    """A phone number: ``GET /v1/numbers?phone_number=``, ``POST /v1/numbers/update?phone_number=``."""

    key = "fluents.number"
    noun = "number"
    list_path = "/v1/numbers/list"
    id_field = "number"
    # List items are normalized (the agent as an id) where a GET embeds it (confirmed for Vocode's API).
    list_item_is_full = False

    def object_id(self, value: Any) -> str:
        return validation.phone_number(value)

    def read_request(self, object_id: Any) -> Request:
        return Request("GET", "/v1/numbers", {"phone_number": self.object_id(object_id)})

    def update_request(self, object_id: Any) -> Request:
        return Request("POST", "/v1/numbers/update", {"phone_number": self.object_id(object_id)})

    def update_problems(
        self, body: Mapping[str, Any], *, current: Mapping[str, Any] | None = None, complete: bool = True
    ) -> list[Problem]:
        # The API requires example_context on every update; complete_body fills it in from the read.
        return validation.fluents_number_update_problems(body, require_example_context=complete)

    def complete_body(self, fields: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        body = dict(fields)
        if "example_context" not in body:
            # Kept as read, so that changing a label never wipes the context.
            body["example_context"] = current.get("example_context") or {}
        return body

    def normalize(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """
        ``inbound_agent`` (and ``telephony_account_connection``) as an id, whether the API embedded
        the object (``GET /v1/numbers``) or sent its id (the update's answer, list items).
        """
        normalized = dict(obj)
        for key in ("inbound_agent", "telephony_account_connection"):
            value = normalized.get(key)
            if isinstance(value, Mapping):
                normalized[key] = value.get("id")
        return normalized

    def as_update_answer(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The update answers a number with ids (``NormalizedNumberDto``): a read is shown the same way."""
        return self.normalize(obj)


FLUENTS_ACTION = FluentsAction()
FLUENTS_NUMBER = FluentsNumber()
