"""Hook for the Tines REST API (story actions)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_fluents_tines.exceptions import InvalidFieldError
from airflow_provider_fluents_tines.hooks.base import BaseServiceHook
from airflow_provider_fluents_tines.objects.tines import TINES_ACTION

_MAX_PER_PAGE = 500
_MAX_PAGES = 10_000
_LIST_FILTERS = frozenset(
    {"story_id", "story_mode", "team_id", "group_id", "action_type", "draft_id", "include_live_activity"}
)


class TinesHook(BaseServiceHook):
    """
    Interact with the Tines REST API of one tenant.

    :param tines_conn_id: a ``tines`` connection: the tenant domain in the host (``my-tenant.tines.com``,
        ``https://my-tenant.tines.io``, a custom or self-hosted domain) and the API key in the password.
    """

    conn_name_attr = "tines_conn_id"
    default_conn_name = "tines_default"
    conn_type = "tines"
    hook_name = "Tines"
    service_name = "Tines"
    connection_test_request = ("/api/v1/info", {})
    # Tines documents 100 requests per minute per (IP, key) on actions, the endpoints this hook calls.
    default_requests_per_minute = 100

    # Airflow 3.0 and 3.1 read the connection form only from methods in the class's own __dict__.
    get_ui_field_behaviour = BaseServiceHook.__dict__["get_ui_field_behaviour"]
    get_connection_form_widgets = BaseServiceHook.__dict__["get_connection_form_widgets"]

    def __init__(self, tines_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(tines_conn_id, **kwargs)
        self.tines_conn_id = tines_conn_id

    def _clean_base_path(self, base_url: str) -> str:
        # Users often paste the API root; the paths below add it themselves.
        return base_url.removesuffix("/api/v1")

    def get_action(self, action_id: int | str) -> dict[str, Any]:
        """``GET /api/v1/actions/{id}``."""
        return self.get_object(TINES_ACTION, action_id)

    def update_action(self, action_id: int | str, **fields: Any) -> dict[str, Any]:
        """``PUT /api/v1/actions/{id}`` with only ``fields`` in the body (a partial update)."""
        return self.update_object(TINES_ACTION, action_id, fields)

    def list_actions(self, per_page: int = _MAX_PER_PAGE, **filters: Any) -> list[dict[str, Any]]:
        """
        Every action matching ``filters`` (``story_id``, ``team_id``, ...), following ``meta.next_page``.

        Only the query of ``next_page`` is used: the key is never sent to a host the API names.
        """
        unknown = set(filters) - _LIST_FILTERS
        if unknown:
            raise InvalidFieldError(
                ", ".join(sorted(unknown)), f"is not a filter; use {sorted(_LIST_FILTERS)}"
            )
        if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= _MAX_PER_PAGE:
            raise InvalidFieldError("per_page", f"must be an integer from 1 to {_MAX_PER_PAGE}")
        params: dict[str, Any] = {**filters, "per_page": per_page, "page": 1}
        items: list[dict[str, Any]] = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        for _ in range(_MAX_PAGES):
            data = self.request("GET", "/api/v1/actions", params=params) or {}
            items.extend(data.get("agents") or [])
            next_page = (data.get("meta") or {}).get("next_page")
            if not next_page:
                break
            params = dict(parse_qsl(urlsplit(next_page).query))
            key = tuple(sorted(params.items()))
            if key in seen:
                break
            seen.add(key)
        return items
