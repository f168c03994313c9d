"""Hook for the Fluents Hosted API (call actions and phone numbers)."""

from __future__ import annotations

from typing import Any

from airflow_provider_fluents_tines.hooks.base import BaseServiceHook
from airflow_provider_fluents_tines.objects.fluents import FLUENTS_ACTION, FLUENTS_NUMBER

# The API's documented page-size range is 1-100.
_PAGE_SIZE = 100
_MAX_PAGES = 10_000


class FluentsHook(BaseServiceHook):
    """
    Interact with the Fluents Hosted API.

    Identifiers travel in the query string, so a phone number's ``+`` is sent as ``%2B``.
    Methods return the API's parsed JSON.

    :param fluents_conn_id: a ``fluents`` connection: API key in the password; host optional,
        default ``https://api.fluents.ai``.
    """

    conn_name_attr = "fluents_conn_id"
    default_conn_name = "fluents_default"
    conn_type = "fluents"
    hook_name = "Fluents"
    service_name = "Fluents"
    default_host = "https://api.fluents.ai"
    connection_test_request = ("/v1/actions/list", {"page": 1, "size": 1})

    # Airflow 3.0 and 3.1 read the connection form only from methods in the class's own __dict__.
    get_ui_field_behaviour = BaseServiceHook.__dict__["get_ui_field_behaviour"]
    get_connection_form_widgets = BaseServiceHook.__dict__["get_connection_form_widgets"]

    def __init__(self, fluents_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(fluents_conn_id, **kwargs)
        self.fluents_conn_id = fluents_conn_id

    def get_action(self, action_id: str) -> dict[str, Any]:
        """``GET /v1/actions?id=``."""
        return self.get_object(FLUENTS_ACTION, action_id)

    def update_action(self, action_id: str, **fields: Any) -> dict[str, Any]:
        """``POST /v1/actions/update?id=`` with only ``fields`` in the body (a partial update)."""
        return self.update_object(FLUENTS_ACTION, action_id, fields)

    def list_actions(self) -> list[dict[str, Any]]:
        """Every action, across all pages of ``GET /v1/actions/list``."""
        return self._list_all("/v1/actions/list")

    def get_number(self, phone_number: str) -> dict[str, Any]:
        """``GET /v1/numbers?phone_number=``."""
        return self.get_object(FLUENTS_NUMBER, phone_number)

    def update_number(self, phone_number: str, **fields: Any) -> dict[str, Any]:
        """
        ``POST /v1/numbers/update?phone_number=``.

        The API requires ``example_context`` in every update; ``FluentsUpdateNumberOperator``
        reads the number first to keep it, this low-level method does not.
        """
        return self.update_object(FLUENTS_NUMBER, phone_number, fields)

    def list_numbers(self) -> list[dict[str, Any]]:
        """Every number, across all pages of ``GET /v1/numbers/list``."""
        return self._list_all("/v1/numbers/list")

    def _list_all(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, _MAX_PAGES + 1):
            data = self.request("GET", path, params={"page": page, "size": _PAGE_SIZE}) or {}
            batch = data.get("items") or []
            items.extend(batch)
            # An empty page ends the walk even if has_more says otherwise.
            if not data.get("has_more") or not batch:
                break
        return items
