"""Compaction and retention of the inference table's files: fewer files, the same rows, never a
row twice, whatever a crash left; old dates removed; the latest rows read without the rest."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime, timezone

import pyarrow.parquet

from tcdeploy.server.gateway import latest_inference_rows, read_inference_table, table_files
from tcdeploy.server.gateway.inference_table import ROW_GROUP_BYTES, SCHEMA, InferenceTableWriter, Row
from tcdeploy.server.gateway.table_files import compact, live_files, parts, remove_expired

DAY = 86_400.0
T0 = 1_700_000_000.0  # 2023-11-14 UTC


def row(n: int, timestamp: float = T0, group_id: str = "grp-t") -> Row:
    return Row(f"r{n}", group_id, "svc-t", "name", "1", timestamp + n, 1.0, 200, b"{}", b'{"predictions": [0]}')


def flushed_one_by_one(tmp_path, rows: list[Row]) -> None:
    """Each row in a segment of its own, as a busy server's flushes make them."""
    writer = InferenceTableWriter(tmp_path)
    for r in rows:
        writer.append(r)
        asyncio.run(writer.flush())
    asyncio.run(writer.close())


def day_dir(tmp_path, day: str = "2023-11-14"):
    return tmp_path / "inference" / "grp-t" / f"date={day}"


def test_compaction_merges_small_files_into_one_with_every_row_once(tmp_path):
    flushed_one_by_one(tmp_path, [row(n) for n in range(6)])
    assert len(list(day_dir(tmp_path).glob("part-*.parquet"))) == 6
    merged = compact(tmp_path / "inference", older_than=10**20, schema=SCHEMA)
    assert merged == 6
    (only,) = day_dir(tmp_path).glob("part-*.parquet")
    assert "~" in only.name
    assert list(read_inference_table(tmp_path, "grp-t")["request_id"]) == [f"r{n}" for n in range(6)]


def test_only_files_older_than_the_bound_are_merged(tmp_path):
    flushed_one_by_one(tmp_path, [row(n) for n in range(4)])
    numbers = sorted(p.first for p in parts(day_dir(tmp_path)))
    compact(tmp_path / "inference", older_than=numbers[2], schema=SCHEMA)  # the first two only
    assert len(list(day_dir(tmp_path).glob("part-*.parquet"))) == 3
    assert sorted(read_inference_table(tmp_path, "grp-t")["request_id"]) == [f"r{n}" for n in range(4)]


def test_sources_a_crash_left_beside_their_merged_file_are_never_read_and_are_tidied(tmp_path):
    flushed_one_by_one(tmp_path, [row(n) for n in range(3)])
    kept = tmp_path / "kept"
    shutil.copytree(day_dir(tmp_path), kept)
    compact(tmp_path / "inference", older_than=10**20, schema=SCHEMA)
    for source in kept.glob("part-*.parquet"):  # as if the server died before removing them
        shutil.copy(source, day_dir(tmp_path) / source.name)
    assert len(live_files(day_dir(tmp_path))) == 1
    assert sorted(read_inference_table(tmp_path, "grp-t")["request_id"]) == ["r0", "r1", "r2"]
    compact(tmp_path / "inference", older_than=10**20, schema=SCHEMA)
    assert len(list(day_dir(tmp_path).glob("part-*.parquet"))) == 1


def test_merged_files_merge_again_and_later_rows_stay_readable(tmp_path):
    flushed_one_by_one(tmp_path, [row(n) for n in range(3)])
    compact(tmp_path / "inference", older_than=10**20, schema=SCHEMA)
    flushed_one_by_one(tmp_path, [row(n) for n in range(3, 5)])
    compact(tmp_path / "inference", older_than=10**20, schema=SCHEMA)
    assert len(list(day_dir(tmp_path).glob("part-*.parquet"))) == 1
    assert list(read_inference_table(tmp_path, "grp-t")["request_id"]) == [f"r{n}" for n in range(5)]


def test_retention_removes_whole_dates_older_than_it(tmp_path):
    flushed_one_by_one(tmp_path, [row(0), row(1, T0 + 5 * DAY), row(2, T0 + 10 * DAY)])
    today = datetime.fromtimestamp(T0 + 10 * DAY, timezone.utc)
    removed = remove_expired(tmp_path / "inference", retention_days=7, today=today)
    assert [d.name for d in removed] == ["date=2023-11-14"]
    assert sorted(read_inference_table(tmp_path, "grp-t")["request_id"]) == ["r1", "r2"]


def test_the_writer_compacts_what_is_old_enough_and_keeps_the_journal_s_rows(tmp_path):
    flushed_one_by_one(tmp_path, [row(n) for n in range(3)])
    writer = InferenceTableWriter(tmp_path)
    writer.compact_after = 0.0
    writer.append(row(3))  # journaled, not yet Parquet: never merged past
    asyncio.run(writer.maintain())
    assert len(list(day_dir(tmp_path).glob("part-*.parquet"))) == 1
    asyncio.run(writer.close())
    assert list(read_inference_table(tmp_path, "grp-t")["request_id"]) == [f"r{n}" for n in range(4)]


def test_a_segment_of_large_bodies_is_written_a_row_group_at_a_time_and_read_back_whole(tmp_path):
    big = b'{"text": "' + b"x" * (ROW_GROUP_BYTES // 4) + b'"}'  # three rows fit a row group, four do not
    rows = [row(n)._replace(request=big) for n in range(10)]
    writer = InferenceTableWriter(tmp_path)
    for r in rows:
        writer.append(r)
    asyncio.run(writer.close())
    (only,) = day_dir(tmp_path).glob("part-*.parquet")
    assert pyarrow.parquet.ParquetFile(only).num_row_groups == 4  # 3 + 3 + 3 + 1 rows
    table = read_inference_table(tmp_path, "grp-t")
    assert list(table["request_id"]) == [f"r{n}" for n in range(10)]
    assert set(table["request"]) == {big.decode()}


def test_a_merge_streams_its_sources_into_row_groups_of_bounded_size(tmp_path, monkeypatch):
    big = b'{"text": "' + b"x" * 50_000 + b'"}'
    flushed_one_by_one(tmp_path, [row(n)._replace(request=big) for n in range(6)])
    monkeypatch.setattr(table_files, "MERGED_ROW_GROUP_BYTES", 2 * len(big))  # two rows a group
    assert compact(tmp_path / "inference", older_than=10**20, schema=SCHEMA) == 6
    (only,) = day_dir(tmp_path).glob("part-*.parquet")
    assert pyarrow.parquet.ParquetFile(only).num_row_groups == 3
    table = read_inference_table(tmp_path, "grp-t")
    assert list(table["request_id"]) == [f"r{n}" for n in range(6)] and set(table["request"]) == {big.decode()}


def test_a_full_merged_file_is_not_merged_again(tmp_path, monkeypatch):
    flushed_one_by_one(tmp_path, [row(n) for n in range(3)])
    compact(tmp_path / "inference", older_than=10**20, schema=SCHEMA)
    (full,) = day_dir(tmp_path).glob("part-*~*.parquet")
    monkeypatch.setattr(table_files, "MERGED_FILE_BYTES", full.stat().st_size)
    flushed_one_by_one(tmp_path, [row(n) for n in range(3, 6)])
    assert compact(tmp_path / "inference", older_than=10**20, schema=SCHEMA) == 3  # the new three only
    merged = sorted(day_dir(tmp_path).glob("part-*~*.parquet"))
    assert len(merged) == 2 and full in merged
    assert list(read_inference_table(tmp_path, "grp-t")["request_id"]) == [f"r{n}" for n in range(6)]


def test_the_latest_rows_come_newest_first_with_the_count_of_every_match(tmp_path, monkeypatch):
    rows = [row(n)._replace(version=str(1 + n % 2), status_code=200 if n % 3 else 500) for n in range(12)]
    flushed_one_by_one(tmp_path, rows[:8])
    monkeypatch.setattr(table_files, "MERGED_ROW_GROUP_BYTES", 1)  # a row group a source
    compact(tmp_path / "inference", older_than=10**20, schema=SCHEMA)
    flushed_one_by_one(tmp_path, rows[8:])  # a merged file and four small ones
    frame, total = latest_inference_rows(tmp_path, "grp-t", 3)
    assert list(frame["request_id"]) == ["r11", "r10", "r9"] and total == 12
    frame, total = latest_inference_rows(tmp_path, "grp-t", 4, version="1")
    assert list(frame["request_id"]) == ["r10", "r8", "r6", "r4"] and total == 6
    frame, total = latest_inference_rows(tmp_path, "grp-t", 100, status=range(500, 501))
    assert list(frame["request_id"]) == ["r9", "r6", "r3", "r0"] and total == 4
    frame, total = latest_inference_rows(tmp_path, "grp-none", 5)
    assert frame.empty and total == 0
    # The whole table (what a download sends) takes the same filters.
    chosen = read_inference_table(tmp_path, "grp-t", version="2", status=range(500, 501))
    assert list(chosen["request_id"]) == ["r3", "r9"]
