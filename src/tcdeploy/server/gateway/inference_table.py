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
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .journal import Journal, Row, decode, segments
from .table_files import compact, read_files, read_latest, remove_expired, segment_number_at

if TYPE_CHECKING:
    import pandas

__all__ = [
    "SCHEMA", "InferenceTableWriter", "Row", "TableFigures", "latest_inference_rows", "read_inference_table", "write_rows",
]  # fmt: skip

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

# What is kept in memory while the journal cannot be written (disk full, say): rows up to this
# many bytes of bodies; past it the oldest are dropped and counted.
MAX_PENDING_BYTES = 64 * 2**20
# Bodies per Parquet row group: what one conversion holds in memory at a time.
ROW_GROUP_BYTES = 2 * 2**20
_GROUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
JOURNAL_DIR = ".journal"

# Told when rows stop being written and when they are written again: (the services whose rows
# are affected, written again?, what happened).
TroubleListener = Callable[[set[str], bool, str], None]


class InferenceTableWriter:
    """Journals each row as it comes and makes the journal into Parquet every `flush_interval`
    seconds (and at start, what a killed server left). A journal that cannot be written keeps
    rows in memory (up to `max_pending_bytes`) and journals them once it can again."""

    def __init__(
        self,
        data_dir: Path,
        flush_interval: float = 1.0,
        *,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        on_trouble: TroubleListener | None = None,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be above 0 seconds, got {flush_interval}")
        self.root = Path(data_dir) / "inference"
        self.flush_interval = flush_interval
        self.max_pending_bytes = max_pending_bytes
        self.dropped = 0  # rows lost because memory's bound was passed
        self.on_trouble = on_trouble
        self._journal = Journal(self.root / JOURNAL_DIR)
        self._pending: deque[Row] = deque()  # rows the journal refused, oldest first
        self._pending_bytes = 0
        self._troubled: set[str] = set()  # services whose rows are not being written
        # Compaction and retention (see `table_files`): merge files older than this many
        # seconds, look every `maintain_every` seconds, remove dates older than the retention
        # (None: keep every row).
        self.compact_after = 3600.0
        self.maintain_every = 600.0
        self.retention_days: int | None = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one flush at a time, so files never race for a name

    @property
    def pending(self) -> int:
        """Rows kept in memory, not yet journaled."""
        return len(self._pending)

    def append(self, row: Row) -> None:
        if not self._pending:
            try:
                self._journal.append(row)
                return
            except OSError as error:
                self._trouble({row.service_id}, f"the inference table cannot be written ({error}); rows kept in memory")
        self._keep(row)

    def _keep(self, row: Row) -> None:
        self._pending.append(row)
        self._pending_bytes += len(row.request) + len(row.response)
        while self._pending_bytes > self.max_pending_bytes and len(self._pending) > 1:
            oldest = self._pending.popleft()
            self._pending_bytes -= len(oldest.request) + len(oldest.response)
            self.dropped += 1

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
            unwritten = await asyncio.to_thread(make_parquet, self.root, closed)
            if unwritten:
                self._trouble(unwritten, "the inference table's journal cannot be made into Parquet; kept on disk")
            elif self._troubled and not self._pending:
                self._recovered()

    def _journal_pending(self) -> None:
        while self._pending:
            row = self._pending[0]
            try:
                self._journal.append(row)
            except OSError:
                return
            self._pending.popleft()
            self._pending_bytes -= len(row.request) + len(row.response)

    def _trouble(self, services: set[str], message: str) -> None:
        """Say so once per service and episode (a full disk would otherwise say it per request)."""
        new = services - self._troubled
        if not new:
            return
        self._troubled |= new
        log.error("inference table: %s (services %s)", message, ", ".join(sorted(new)))
        if self.on_trouble is not None:
            self.on_trouble(new, False, message)

    def _recovered(self) -> None:
        services, self._troubled = self._troubled, set()
        lost = f"; {self.dropped} rows were dropped past the memory bound" if self.dropped else ""
        message = f"the inference table is written again{lost}"
        log.warning("inference table: %s", message)
        if self.on_trouble is not None:
            self.on_trouble(services, True, message)

    async def maintain(self) -> None:
        """Merge small files and remove expired dates. Only files older than `compact_after`, and
        older than every segment still to be made into Parquet, are merged: a merged file covers
        the numbers it spans, so a later file inside that span would be ignored."""
        async with self._lock:
            older_than = segment_number_at(time.time() - self.compact_after)
            waiting = segments(self.root / JOURNAL_DIR)
            if waiting:
                older_than = min(older_than, waiting[0][0])
            await asyncio.to_thread(self._maintain, older_than)

    def _maintain(self, older_than: int) -> None:
        try:
            compact(self.root, older_than=older_than, schema=SCHEMA)
            if self.retention_days:
                remove_expired(self.root, self.retention_days)
        except OSError as error:  # a full disk, say: the small files stay, as readable as before
            log.warning("inference table: compaction skipped: %s", error)

    async def _flush_loop(self) -> None:
        maintained = time.monotonic()
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()
            if time.monotonic() - maintained >= self.maintain_every:
                await self.maintain()
                maintained = time.monotonic()


class TableFigures(Collector):
    """The writer's rows kept in memory and rows dropped, read at scrape time."""

    def __init__(self, writer: InferenceTableWriter) -> None:
        self._writer = writer

    def describe(self):
        return []

    def collect(self):
        yield GaugeMetricFamily(
            "tcdeploy_inference_rows_pending",
            "Inference-table rows kept in memory, not yet on disk",
            self._writer.pending,
        )
        yield CounterMetricFamily(
            "tcdeploy_inference_rows_dropped",
            "Inference-table rows dropped because memory's bound was passed while the disk was unwritable",
            self._writer.dropped,
        )


def make_parquet(root: Path, upto: int) -> set[str]:
    """Turn the closed journal segments under `root` (numbered up to `upto`) into Parquet and
    remove them; a segment that cannot be written (disk full, say) stays, to be tried again at
    the next flush. Returns the services of the rows left unwritten."""
    for number, path in segments(root / JOURNAL_DIR, upto):
        rows = list(decode(path.read_bytes()))
        unwritten = write_rows(root, rows, stem=f"{number:020d}")
        if unwritten:
            return {row.service_id for row in unwritten}
        path.unlink()
    return set()


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


def _row_groups(rows: list[Row]) -> Iterator[list[Row]]:
    """Consecutive runs of rows holding about `ROW_GROUP_BYTES` of bodies (at least one row):
    a segment becomes Parquet a row group at a time, so converting it never holds the whole
    second of bodies (MiBs under load) as Python strings and Arrow buffers at once."""
    group: list[Row] = []
    size = 0
    for row in rows:
        if group and size + len(row.request) + len(row.response) > ROW_GROUP_BYTES:
            yield group
            group, size = [], 0
        group.append(row)
        size += len(row.request) + len(row.response)
    if group:
        yield group


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
        with pq.ParquetWriter(temporary, SCHEMA) as writer:
            for group in _row_groups(rows):
                writer.write_table(_to_table(group))
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


def latest_inference_rows(
    data_dir: Path, group_id: str, limit: int, *, version: str | None = None, status: range | None = None
) -> tuple[pandas.DataFrame, int]:
    """A group's latest `limit` rows (of one `version`, with a status code in `status`, when
    given), newest first, and how many such rows there are in all."""
    directory = _group_dir(Path(data_dir) / "inference", group_id)
    table, total = read_latest(sorted(directory.glob("date=*")), SCHEMA, limit, _where(version, status))
    frame = table.to_pandas().sort_values("timestamp", kind="stable", ascending=False, ignore_index=True)
    return frame.head(limit), total


def read_inference_table(
    data_dir: Path, group_id: str, *, version: str | None = None, status: range | None = None
) -> pandas.DataFrame:
    """Every row recorded for a group (of one `version`, with a status code in `status`, when
    given), oldest first, as a pandas DataFrame."""
    directory = _group_dir(Path(data_dir) / "inference", group_id)
    frame = read_files(sorted(directory.glob("date=*")), SCHEMA, _where(version, status)).to_pandas()
    return frame.sort_values("timestamp", kind="stable", ignore_index=True)


def _where(version: str | None, status: range | None):
    """The rows of one version and a range of status codes, as a `pyarrow.dataset` filter (None: all)."""
    import pyarrow.dataset as ds

    where = None
    if version is not None:
        where = ds.field("version") == version
    if status is not None:
        codes = (ds.field("status_code") >= status.start) & (ds.field("status_code") < status.stop)
        where = codes if where is None else where & codes
    return where
