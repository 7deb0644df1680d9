"""A service's `Env` (and the create item's single `EnvVar`): the variables its replicas get.

Names that would change how a replica process runs, or what it loads, are the server's own and are
refused, so an `Env` can set the model's settings but never take over the process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
RESERVED = frozenset({
    "MLFLOW_TRACKING_URI", "PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONUNBUFFERED",
    "PYTHONSTARTUP", "LD_PRELOAD", "LD_LIBRARY_PATH", "HOME",
})  # fmt: skip
RESERVED_PREFIXES = ("TCDEPLOY_", "OMP_", "MKL_", "OPENBLAS_")


def service_env(spec: Mapping[str, Any], field: str = "Env") -> dict[str, str]:
    """The checked variables of a service spec, `EnvVar` then `Env` (a later name wins)."""
    pairs = ([spec["EnvVar"]] if spec.get("EnvVar") else []) + list(spec.get("Env") or [])
    env: dict[str, str] = {}
    for i, pair in enumerate(pairs):
        name, value = pair.get("Name") or "", pair.get("Value") or ""
        where = f"{field}.{i}.Name"
        if not _NAME.fullmatch(name):
            raise InvalidParameterValue(where, f"{name!r} is not an environment variable name")
        if name in RESERVED or name.startswith(RESERVED_PREFIXES):
            raise InvalidParameterValue(where, f"{name} is set by the server and cannot be overridden")
        if "\0" in value or len(value) > 32_768:
            raise InvalidParameterValue(f"{field}.{i}.Value", "must be text of at most 32768 characters")
        env[name] = value
    return env
