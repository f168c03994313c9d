"""Hooks for the Fluents and Tines APIs: ``hooks.fluents.FluentsHook`` and ``hooks.tines.TinesHook``."""
