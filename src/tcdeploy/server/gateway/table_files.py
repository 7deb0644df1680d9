"""The inference table's Parquet files: which of them hold the rows, merging small ones, and
retention.

Each flush writes one file per (group, UTC date) a journal segment, `part-<N>.parquet` (N the
segment's number, the microsecond it was opened), so a busy group makes thousands of small files
a day. Compaction merges the files of a date dir older than `compact_after` into one,
`part-<A>~<B>.parquet`, which holds every row of the files numbered A to B. A merged file is
written under a temporary name and renamed; only then are its sources removed. A reader that
finds a merged file ignores every file it covers, so no row is read twice while the sources are
still there (or after a crash left them), and none is lost: a file is only ever covered once its
rows are in the merged one. Files are never appended to, so readers are never blocked.

A merge streams its sources a row group at a time (rows in segment order; readers sort by time),
so its memory is a row group's, not the day's; and a merged file of `MERGED_FILE_BYTES` or more
is left as it is, so a busy day ends as a few large files and merging never rereads all of it.

Retention removes whole date dirs older than `retention_days`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# A merged file this large is merged no more (on disk, compressed).
MERGED_FILE_BYTES = 256 * 2**20
# Rows gathered into each row group of a merged file (in memory, uncompressed).
MERGED_ROW_GROUP_BYTES = 8 * 2**20

log = logging.getLogger(__name__)

_NAME = re.compile(r"part-(\d+)(?:~(\d+))?\.parquet")
_DATE = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_STALE_TEMPORARY = 3600.0  # s: a temporary file this old was left by a crash


@dataclass(frozen=True)
class Part:
    """One Parquet file of a date dir: the segment numbers it holds, `first` to `last`."""

    path: Path
    first: int
    last: int

    def covers(self, other: Part) -> bool:
        return self.path != other.path and self.first <= other.first and other.last <= self.last


def parts(directory: Path) -> list[Part]:
    """The numbered files of one date dir (files written another way are not merged)."""
    found = []
    for path in directory.glob("part-*.parquet"):
        match = _NAME.fullmatch(path.name)
        if match:
            first = int(match.group(1))
            found.append(Part(path, first, int(match.group(2) or first)))
    return found


def live_files(directory: Path) -> list[Path]:
    """The files of a date dir that hold its rows: every `part-*.parquet` but those a merged
    file covers."""
    numbered = parts(directory)
    covered = {p.path for p in numbered if any(q.covers(p) for q in numbered)}
    return sorted(path for path in directory.glob("part-*.parquet") if path not in covered)


def read_files(directories: Iterable[Path], schema: pa.Schema, where=None) -> pa.Table:
    """The rows of the date dirs' live files (that match `where`, a `pyarrow.dataset`
    expression). A file compaction removed between the listing and the read is read again from
    a fresh listing (its rows are in the merged file by then)."""
    directories = list(directories)
    for _ in range(5):
        try:
            tables = [
                pq.read_table(path, schema=schema, partitioning=None, filters=where)
                for d in directories
                for path in live_files(d)
            ]
        except FileNotFoundError:
            continue
        return pa.concat_tables(tables) if tables else schema.empty_table()
    raise RuntimeError("the inference table kept changing while it was read; try again")


def read_latest(directories: Iterable[Path], schema: pa.Schema, limit: int, where=None) -> tuple[pa.Table, int]:
    """The last `limit` rows (in file order) of the date dirs' live files that match `where` (a
    `pyarrow.dataset` expression), and how many match in all. Reads row groups newest first until
    it has `limit` rows, and only the filter's columns of the rest: a busy group's table is
    never loaded whole to show its latest rows."""
    import pyarrow.dataset as ds

    directories = list(directories)
    for _ in range(5):
        try:
            files = [str(path) for d in directories for path in live_files(d)]
            if not files:
                return schema.empty_table(), 0
            every = ds.dataset(files, schema=schema, format="parquet")
            total = every.count_rows(filter=where)
            picked = _newest_rows(every, schema, limit, where)
            latest = pa.concat_tables(reversed(picked)) if picked else schema.empty_table()
            return latest.slice(max(0, latest.num_rows - limit)), total
        except FileNotFoundError:
            continue
    raise RuntimeError("the inference table kept changing while it was read; try again")


def _newest_rows(files, schema: pa.Schema, limit: int, where) -> list[pa.Table]:
    """Row groups of `files` (a dataset), newest first, read until they hold `limit` matches."""
    picked, found = [], 0
    for fragment in reversed(list(files.get_fragments())):
        for group in reversed(fragment.split_by_row_group()):
            table = group.to_table(schema=schema, filter=where)
            picked.append(table)
            found += table.num_rows
            if found >= limit:
                return picked
    return picked


def compact(root: Path, *, older_than: int, schema: pa.Schema) -> int:
    """Merge, in every date dir under `root` (`<group>/date=…`), the files of segments numbered
    below `older_than` into one; remove files a merged file covers and stale temporaries.
    Returns how many files were merged away."""
    merged = 0
    for directory in sorted(root.glob("*/date=*")):
        _tidy(directory)
        numbered = parts(directory)
        old = [p for p in numbered if p.last < older_than and not any(q.covers(p) for q in numbered)]
        old = _after_the_last_full_file(sorted(old, key=lambda p: p.first))
        if len(old) < 2:
            continue
        _merge(directory, old, schema)
        merged += len(old)
    return merged


def _after_the_last_full_file(old: list[Part]) -> list[Part]:
    """The files after the last one that is full (`MERGED_FILE_BYTES`): what can merge into one
    file without rereading a full one, as one run of consecutive numbers."""
    for i in range(len(old) - 1, -1, -1):
        if old[i].path.stat().st_size >= MERGED_FILE_BYTES:
            return old[i + 1 :]
    return old


def _merge(directory: Path, sources: list[Part], schema: pa.Schema) -> None:
    first, last = sources[0].first, max(p.last for p in sources)
    # Everything numbered between first and last is merged: a file of that range left out would
    # be covered, so ignored, without its rows being in the merged file.
    inside = [p for p in parts(directory) if first <= p.first and p.last <= last]
    if {p.path for p in inside} != {p.path for p in sources}:
        return
    target = directory / f"part-{first:020d}~{last:020d}.parquet"
    temporary = directory / f".{target.name}.tmp"
    try:
        with pq.ParquetWriter(temporary, schema) as writer:
            for table in _row_groups_of(sources, schema):
                writer.write_table(table)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    for source in sources:
        source.path.unlink(missing_ok=True)


def _row_groups_of(sources: list[Part], schema: pa.Schema) -> Iterable[pa.Table]:
    """The sources' rows in order, read as `schema` (a column an older file lacks reads as
    nulls), gathered into tables of about `MERGED_ROW_GROUP_BYTES`."""
    import pyarrow.dataset as ds  # as pq.read_table does: ~50 MiB, paid by the first merge or read

    files = ds.dataset([str(p.path) for p in sources], schema=schema, format="parquet")
    gathered: list[pa.RecordBatch] = []
    size = 0
    for batch in files.to_batches(use_threads=False, batch_readahead=0, fragment_readahead=0):
        gathered.append(batch)
        size += batch.nbytes
        if size >= MERGED_ROW_GROUP_BYTES:
            yield pa.Table.from_batches(gathered, schema)
            gathered, size = [], 0
    if gathered:
        yield pa.Table.from_batches(gathered, schema)


def _tidy(directory: Path) -> None:
    """Remove what a crash mid-compaction left: sources a merged file covers, old temporaries."""
    numbered = parts(directory)
    for part in numbered:
        if any(other.covers(part) for other in numbered):
            part.path.unlink(missing_ok=True)
    for temporary in directory.glob(".part-*.tmp"):
        if time.time() - temporary.stat().st_mtime > _STALE_TEMPORARY:
            temporary.unlink(missing_ok=True)


def remove_expired(root: Path, retention_days: int, today: datetime | None = None) -> list[Path]:
    """Remove the date dirs older than `retention_days` (by their UTC date); returns them."""
    cutoff = ((today or datetime.now(timezone.utc)) - timedelta(days=retention_days)).strftime("%Y-%m-%d")
    removed = []
    for directory in root.glob("*/date=*"):
        match = _DATE.fullmatch(directory.name)
        if match and match.group(1) < cutoff:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    if removed:
        log.info("inference table: removed %d date folders older than %d days", len(removed), retention_days)
    return removed


def segment_number_at(epoch_seconds: float) -> int:
    """The number a journal segment opened at `epoch_seconds` has (see `journal`)."""
    return int(epoch_seconds * 1_000_000)
