"""The Tines REST API's objects: the actions of a story."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_fluents_tines import validation
from airflow_provider_fluents_tines.objects.base import ListPage, ObjectKind, Request
from airflow_provider_fluents_tines.validation import Problem

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.tines import TinesHook


class TinesAction(ObjectKind):
    """A story action: ``GET /api/v1/actions/{id}``, ``PUT /api/v1/actions/{id}``."""

    key = "tines.action"
    service = "Tines"
    noun = "action"
    # The update API takes the monitor fields only together (monitor_no_events_emitted needs both).
    companion_fields = {
        "monitor_failures": ("monitor_all_events",),
        "monitor_all_events": ("monitor_failures",),
        "monitor_no_events_emitted": ("monitor_failures", "monitor_all_events"),
    }

    def hook_class(self) -> type[TinesHook]:
        from airflow_provider_fluents_tines.hooks.tines import TinesHook

        return TinesHook

    def object_id(self, value: Any) -> int:
        return validation.tines_action_id(value)

    def read_request(self, object_id: Any) -> Request:
        return Request("GET", f"/api/v1/actions/{self.object_id(object_id)}", {})

    def update_request(self, object_id: Any) -> Request:
        return Request("PUT", f"/api/v1/actions/{self.object_id(object_id)}", {})

    # Moved by runs, not by edits (the reference's action object, section 6); updated_at moves
    # with every edit, whose own fields are watched.
    volatile_fields = frozenset(
        {
            "updated_at",
            "last_check_at",
            "last_receive_at",
            "last_event_at",
            "last_error_log_at",
            "blended_events_count",
            "logs_count",
            "events_count",
            "pending_action_runs_count",
            "action_memory_contents",
        }
    )
    # GET /api/v1/actions: 500 per page at most (confirmed), filtered by story_id, items under
    # "agents" with the fields of a GET (confirmed); meta.next_page is a full URL.
    list_page_size = 500

    def list_request(self, scope: Hashable | None, page: int) -> Request:
        params: dict[str, Any] = {"per_page": self.list_page_size, "page": page}
        if scope is not None:
            params["story_id"] = validation.tines_action_id(scope, "story_id")
        return Request("GET", "/api/v1/actions", params)

    def list_page(self, answer: Mapping[str, Any], page: int) -> ListPage:
        items = answer.get("agents")
        if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
            raise ValueError("the answer has no list of actions under 'agents'")
        meta = answer.get("meta")
        meta = meta if isinstance(meta, Mapping) else {}
        pages = meta.get("pages")
        return ListPage(
            [dict(item) for item in items],
            _next_page_number(meta, page),
            pages if validation._is_positive_int(pages) else None,
        )

    def listed_id(self, item: Mapping[str, Any]) -> Any:
        return validation._tines_id(item.get("id"))

    def scope_of(self, obj: Mapping[str, Any]) -> Hashable | None:
        return validation._tines_id(obj.get("story_id"))

    def prepare_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        # Action ids given as digit strings (rendered templates; the API page quotes them) are sent as ints.
        return validation.tines_ids_as_ints(fields)

    def update_problems(
        self, body: Mapping[str, Any], *, current: Mapping[str, Any] | None = None, complete: bool = True
    ) -> list[Problem]:
        # num_runs_to_save exists only for some action types: refused once the type is read.
        current_type = None if current is None else current.get("type")
        return validation.tines_action_update_problems(body, current_type=current_type)

    def normalize(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """
        Add the request's names to an action: ``source_ids``/``receiver_ids`` from ``sources``/``receivers``,
        ``links_to_*`` as ``[{source_id|receiver_id, type}]`` (responses say ``link_type`` and may send a
        single object), and ``num_runs_to_save`` from ``story_run_save_setting``.
        """
        normalized = dict(obj)
        for ids_field, observed_field in (("source_ids", "sources"), ("receiver_ids", "receivers")):
            if isinstance(obj.get(observed_field), list):
                normalized[ids_field] = list(obj[observed_field])
        for links_field, key in (("links_to_sources", "source_id"), ("links_to_receivers", "receiver_id")):
            links = obj.get(links_field)
            if isinstance(links, Mapping):
                links = [links]
            if isinstance(links, list):
                normalized[links_field] = [
                    {key: link.get(key), "type": link.get("link_type", link.get("type", "DEFAULT"))}
                    for link in links
                    if isinstance(link, Mapping)
                ]
        setting = obj.get("story_run_save_setting")
        if isinstance(setting, Mapping) and "num_runs_to_save" in setting:
            normalized["num_runs_to_save"] = setting["num_runs_to_save"]
        return normalized

    # Links are symmetric: a link from A to B is in A's receivers and in B's sources, whichever was written.
    _LINK_IDS = {
        "source_ids": None,
        "receiver_ids": None,
        "links_to_sources": "source_id",
        "links_to_receivers": "receiver_id",
    }

    def links_to(self, fields: Mapping[str, Any]) -> set[Any]:
        ids: set[Any] = set()
        for name, key in self._LINK_IDS.items():
            for item in fields.get(name) or []:
                linked = item.get(key) if key and isinstance(item, Mapping) else item
                if isinstance(linked, int) and not isinstance(linked, bool):
                    ids.add(linked)
        return ids

    def without_links_to(self, fields: Mapping[str, Any], ids: set[Any]) -> dict[str, Any]:
        kept = dict(fields)
        for name, key in self._LINK_IDS.items():
            if isinstance(kept.get(name), list):
                kept[name] = [
                    item
                    for item in kept[name]
                    if (item.get(key) if key and isinstance(item, Mapping) else item) not in ids
                ]
        for name, ids_name in (("sources", "source_ids"), ("receivers", "receiver_ids")):
            if name in kept and ids_name in kept:
                kept[name] = kept[ids_name]
        return kept

    def restored_fields(self, changed: Sequence[str], observed: Mapping[str, Any]) -> list[str]:
        """Links are restored with their types: a ``source_ids`` change is recorded as ``links_to_sources``."""
        as_links = {"source_ids": "links_to_sources", "receiver_ids": "links_to_receivers"}
        return super().restored_fields(
            [as_links[name] if name in as_links and as_links[name] in observed else name for name in changed],
            observed,
        )


def _next_page_number(meta: Mapping[str, Any], page: int) -> int | None:
    """
    The page after ``page``, from ``meta.next_page`` (a full URL: only its ``page`` parameter is
    used, so that no request follows a URL to another host); None on the last page.

    :raises ValueError: a next page is named but cannot be followed forward (a server bug must not
        loop a reader, nor end a listing early).
    """
    next_url = meta.get("next_page")
    if not isinstance(next_url, str) or not next_url:
        return None
    number: Any = meta.get("next_page_number")
    if not validation._is_positive_int(number):
        values = parse_qs(urlsplit(next_url).query).get("page") or [""]
        number = int(values[0]) if values[0].isdigit() else None
    if not isinstance(number, int) or number <= page:
        # A next page that cannot be followed is not the end of the list: the listing is incomplete.
        raise ValueError(f"meta.next_page {next_url[:200]!r} gives no page after {page}")
    return number


TINES_ACTION = TinesAction()
