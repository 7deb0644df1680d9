"""The control plane: one module per resource, one pipeline for every action."""
from . import calls, groups, logs, monitoring, pods, registry, services, specs, tokens  # noqa: F401  (registers actions)
