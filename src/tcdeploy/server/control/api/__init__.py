"""The control plane's wire: one module per resource, each action parsing its typed request,
calling the backend with plain arguments and shaping the reply; one table, one pipeline."""

from .pipeline import ControlApi
from .pods import POD_URL_TTL, pod_page
from .table import ACTIONS

__all__ = ["ACTIONS", "POD_URL_TTL", "ControlApi", "pod_page"]
