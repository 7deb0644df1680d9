"""Key casing between MLflow and the wire: config dicts go out PascalCase (``snake_case`` keys
work too), replies come back snake_case."""

from __future__ import annotations

import re
from typing import Any

_WORD_BOUNDARY_1 = re.compile(r"(.)([A-Z][a-z]+)")
_WORD_BOUNDARY_2 = re.compile(r"([a-z0-9])([A-Z])")


def snake(name: str) -> str:
    """``ServiceGroupId`` -> ``service_group_id``."""
    return _WORD_BOUNDARY_2.sub(r"\1_\2", _WORD_BOUNDARY_1.sub(r"\1_\2", name)).lower()


def pascal(name: str) -> str:
    """``enable_instance_rps_limit`` -> ``EnableInstanceRpsLimit``; PascalCase is kept."""
    if "_" not in name:
        return name[:1].upper() + name[1:]
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def snake_keys(value: Any) -> Any:
    """Every dict key in a reply (nested, inside lists too) to snake_case."""
    if isinstance(value, dict):
        return {snake(k): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def pascal_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {pascal(k): pascal_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal_keys(v) for v in value]
    return value
