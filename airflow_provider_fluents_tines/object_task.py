"""What an operator or a sensor needs to address one API object, written once for both."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.base import BaseServiceHook


class ObjectTaskMixin:
    """
    Names the hook, the object kind, and the task arguments holding the object's id and the
    connection id. The hook is loaded by path on first use: the hook modules pull in the HTTP
    stack, which DAG parsing does not need.
    """

    hook_class_path: ClassVar[str]
    object_kind: ClassVar[str]
    id_argument: ClassVar[str]
    conn_id_argument: ClassVar[str]

    @cached_property
    def hook(self) -> BaseServiceHook:
        from airflow_provider_fluents_tines.hooks import load_hook_class

        return load_hook_class(self.hook_class_path)(getattr(self, self.conn_id_argument))

    def object_id(self) -> Any:
        """The task's object id, checked by the hook's rule for it; no request is made."""
        return self.hook.object_id(self.object_kind, getattr(self, self.id_argument))
