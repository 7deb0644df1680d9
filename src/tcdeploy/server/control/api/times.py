"""Times on the wire: ISO-8601 out (seconds, or milliseconds for log lines), ISO-8601 in."""

from __future__ import annotations

from datetime import datetime, timezone

from tcdeploy.protocol.errors import InvalidParameterValue


def iso(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def wedata_time(ts: float | None) -> str:
    """wedata's form: `2025-10-16T14:00:55`, the server's local time with no offset."""
    if not ts:
        return ""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%dT%H:%M:%S")


def rfc3339(ts: float) -> str:
    """A log line's time: RFC 3339 in UTC with a `Z` (`2022-01-11T04:14:36.348499Z`)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None, field: str) -> float | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameterValue(
            field, f"{value!r} is not an ISO-8601 time like 2026-01-10T12:15:03+08:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed.timestamp()
