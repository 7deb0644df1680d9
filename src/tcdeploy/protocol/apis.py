"""The two API services the wire speaks, with their versions, and defaults both sides share."""

from __future__ import annotations

WEDATA = "wedata"
TIONE = "tione"
API_VERSIONS = {WEDATA: "2025-10-10", TIONE: "2021-11-11"}

# Rows a replica merges into one predict call, and how long it waits for more. Per-call
# overhead dominates tree ensembles (joblib dispatch per tree), so merging large requests pays.
DEFAULT_MAX_BATCH_ROWS = 1024
DEFAULT_MAX_BATCH_WAIT_MS = 2.0

# Names of groups and services: what the console allows, and safe in URLs and file names.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$"
