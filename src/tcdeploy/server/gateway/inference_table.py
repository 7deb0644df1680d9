"""The inference table: one row per routed request, appended as Parquet files under
`<data_dir>/inference/<group_id>/date=YYYY-MM-DD/part-<segment>.parquet`.

The request path writes each row to a journal segment (`journal`) before its reply leaves, so a
killed server loses no answered request's row. At each flush a worker thread turns the closed
segments into Parquet, one file per (group, UTC date) a segment, named after the segment: a
segment made into Parquet again after a crash (its files written, the segment not yet removed)
rewrites nothing, so no row is written twice. A file is written under a temporary name and
renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from .journal import Journal, Row, decode, segments

if TYPE_CHECKING:
    import pandas

__all__ = ["SCHEMA", "InferenceTableWriter", "Row", "read_inference_table", "write_rows"]

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("client_request_id", pa.string()),
        ("group_id", pa.string()),
        ("service_id", pa.string()),
        ("service_name", pa.string()),
        ("version", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("latency_ms", pa.float64()),
        ("status_code", pa.int32()),
        ("request", pa.string()),
        ("response", pa.string()),
    ]
)

# Rows kept in memory while the journal cannot be written (disk full, say); beyond it the
# oldest are dropped.
MAX_PENDING_ROWS = 200_000
_GROUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
JOURNAL_DIR = ".journal"


class InferenceTableWriter:
    """Journals each row as it comes and makes the journal into Parquet every `flush_interval`
    seconds (and at start, what a killed server left)."""

    def __init__(self, data_dir: Path, flush_interval: float = 1.0) -> None:
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be above 0 seconds, got {flush_interval}")
        self.root = Path(data_dir) / "inference"
        self.flush_interval = flush_interval
        self._journal = Journal(self.root / JOURNAL_DIR)
        self._pending: list[Row] = []  # rows the journal refused, to be journaled at the next flush
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one flush at a time, so files never race for a name

    def append(self, row: Row) -> None:
        if not self._pending:
            try:
                self._journal.append(row)
                return
            except OSError as error:
                log.error("inference table: the journal cannot be written (%s); rows kept in memory", error)
        self._pending.append(row)
        del self._pending[:-MAX_PENDING_ROWS]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._flush_loop(), name="inference-table-flush")

    async def close(self) -> None:
        """Stop the periodic flush and write every row still journaled or kept."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.flush()
        if self._pending:
            log.error("inference table: %d rows could not be written and are lost", len(self._pending))

    async def flush(self) -> None:
        async with self._lock:
            self._journal_pending()
            closed = self._journal.rotate()
            await asyncio.to_thread(make_parquet, self.root, closed)

    def _journal_pending(self) -> None:
        while self._pending:
            try:
                self._journal.append(self._pending[0])
            except OSError:
                return
            del self._pending[0]

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()


def make_parquet(root: Path, upto: int) -> None:
    """Turn the closed journal segments under `root` (numbered up to `upto`) into Parquet and
    remove them; a segment that cannot be written (disk full, say) stays, to be tried again at
    the next flush."""
    for number, path in segments(root / JOURNAL_DIR, upto):
        rows = list(decode(path.read_bytes()))
        if write_rows(root, rows, stem=f"{number:020d}"):
            return
        path.unlink()


def write_rows(root: Path, rows: list[Row], *, stem: str | None = None) -> list[Row]:
    """Write rows as one Parquet file per (group, UTC date), named `part-<stem>.parquet` (a file
    of that name already there was written before and is kept); return the rows that could not
    be written."""
    batches: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        day = datetime.fromtimestamp(row.timestamp, timezone.utc).strftime("%Y-%m-%d")
        batches[(row.group_id, day)].append(row)
    unwritten: list[Row] = []
    for (group_id, day), batch in batches.items():
        try:
            _write_file(_group_dir(root, group_id) / f"date={day}", stem or _fresh_stem(), batch)
        except Exception:
            log.exception(
                "inference table: writing %d rows of %s failed; kept for the next flush", len(batch), group_id
            )
            unwritten.extend(batch)
    return unwritten


def _fresh_stem() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{os.urandom(4).hex()}"


def _to_table(rows: list[Row]) -> pa.Table:
    return pa.table(
        {
            "request_id": [r.request_id for r in rows],
            "client_request_id": [_client_request_id(r.request) for r in rows],
            "group_id": [r.group_id for r in rows],
            "service_id": [r.service_id for r in rows],
            "service_name": [r.service_name for r in rows],
            "version": [r.version for r in rows],
            "timestamp": [int(r.timestamp * 1_000_000) for r in rows],
            "latency_ms": [r.latency_ms for r in rows],
            "status_code": [r.status_code for r in rows],
            "request": [r.request.decode("utf-8", "replace") for r in rows],
            "response": [r.response.decode("utf-8", "replace") for r in rows],
        },
        schema=SCHEMA,
    )


def _write_file(directory: Path, stem: str, rows: list[Row]) -> None:
    target = directory / f"part-{stem}.parquet"
    if target.exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{target.name}.tmp"
    try:
        pq.write_table(_to_table(rows), temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _client_request_id(body: bytes) -> str | None:
    """The WeData form's `client_request_id`, when the body is a JSON object that has one."""
    if b"client_request_id" not in body:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get("client_request_id") if isinstance(document, dict) else None
    return None if value is None else str(value)


def _group_dir(root: Path, group_id: str) -> Path:
    if not _GROUP_ID.fullmatch(group_id) or group_id in (".", ".."):
        raise ValueError(f"group_id {group_id!r} is not a valid group id")
    return root / group_id


def read_inference_table(data_dir: Path, group_id: str) -> pandas.DataFrame:
    """Every row recorded for a group, oldest first, as a pandas DataFrame."""
    directory = _group_dir(Path(data_dir) / "inference", group_id)
    files = sorted(directory.glob("date=*/part-*.parquet"))
    tables = [pq.read_table(path, schema=SCHEMA, partitioning=None) for path in files]
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    frame = table.to_pandas()
    return frame.sort_values("timestamp", kind="stable", ignore_index=True)
