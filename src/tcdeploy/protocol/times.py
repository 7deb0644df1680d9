"""Times as requests give them: ISO-8601, checked at the edge so a handler never meets a bad one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError


def iso_time(value: str) -> str:
    """An ISO-8601 time the server can turn into epoch seconds (naive: the server's local time)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
        if parsed is not None:
            (parsed if parsed.tzinfo else parsed.astimezone()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise PydanticCustomError("value_error", "is not an ISO-8601 time like 2026-01-10T12:15:03+08:00") from None
    return value


IsoTime = Annotated[str, AfterValidator(iso_time)]
