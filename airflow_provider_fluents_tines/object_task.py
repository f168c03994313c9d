"""What an operator or a sensor needs to address one API object, written once for both."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from airflow_provider_fluents_tines.hooks.base import BaseServiceHook
    from airflow_provider_fluents_tines.objects import ObjectKind


class ObjectTaskMixin:
    """
    An operator or sensor on one object of :attr:`object_kind`. The hook is built on first use,
    from the task's connection and ``hook_params``: the hook modules pull in the HTTP stack, which
    DAG parsing does not need.
    """

    object_kind: ClassVar[ObjectKind]
    hook_params: dict[str, Any] | None
    # The hook, once made, holds a session that does not deep-copy (Airflow copies tasks).
    shallow_copy_attrs: Sequence[str] = ("hook",)

    def connection_id(self) -> str:
        """The task's connection id (each task names its argument after its service)."""
        raise NotImplementedError

    def given_object_id(self) -> Any:
        """The task's object id argument, as given (rendered, not yet checked)."""
        raise NotImplementedError

    @cached_property
    def hook(self) -> BaseServiceHook:
        return self.object_kind.hook_class().from_hook_params(self.connection_id(), self.hook_params)

    def object_id(self) -> Any:
        """The task's object id, checked by its kind's rule; no request is made."""
        return self.object_kind.object_id(self.given_object_id())
