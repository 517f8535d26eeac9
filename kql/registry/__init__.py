"""Every filter of ``GET /v1/customers`` as data (``registry.toml``), loaded once: the one
source of truth that the language, the planner, the docs, completion and the sandbox read."""

from kql.registry.loader import Attribute, Filter, Registry, filters, load_registry, registry

__all__ = ["Attribute", "Filter", "Registry", "filters", "load_registry", "registry"]
