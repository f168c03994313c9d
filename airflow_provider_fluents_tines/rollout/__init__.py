"""
Rollouts: many objects of both APIs changed in waves, with a plan and snapshot first, verification
after each wave, and a rollback that restores exactly what the rollout changed. See the README
("Rollouts") and :class:`Rollout`.
"""

from __future__ import annotations

from airflow_provider_fluents_tines.rollout.changes import Change, load_changes
from airflow_provider_fluents_tines.rollout.group import Rollout
from airflow_provider_fluents_tines.rollout.tasks import DriftCheckOperator

__all__ = ["Change", "DriftCheckOperator", "Rollout", "load_changes"]
