"""The inference table: one row per routed request, in Parquet, nothing lost on a clean stop."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tcdeploy.server.gateway import RouteTable, read_inference_table
from tcdeploy.server.gateway.auth import token_hash
from tcdeploy.server.gateway.inference_table import (
    JOURNAL_DIR,
    SCHEMA,
    InferenceTableWriter,
    Row,
    make_parquet,
    write_rows,
)
from tcdeploy.server.gateway.journal import decode, encode, segments
from tests.support.disks import fill, small_disk

from .gateway_harness import IRIS_BODY, IRIS_COLUMNS, make_group, make_version, serve_gateway

COLUMNS = [field.name for field in SCHEMA]


def table_routes(replicas, *, table: bool = True, **group_options) -> RouteTable:
    routes = RouteTable()
    routes.put_group(make_group("grp-t", make_version("svc-t", "grp-t", table=table), **group_options))
    routes.set_replicas("svc-t", [r.replica() for r in replicas])
    return routes


def row(group_id: str = "grp-t", timestamp: float = 1_700_000_000.0, body: bytes = b"{}") -> Row:
    return Row("rid", group_id, "svc-t", "name", "1", timestamp, 1.5, 200, body, b'{"predictions": [0]}')


@pytest.mark.anyio
async def test_n_requests_and_a_clean_stop_give_exactly_n_rows(tmp_path, model_replicas):
    wedata = json.dumps(
        {"client_request_id": "client-7", "dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}
    )
    bodies = [IRIS_BODY] * 30 + [wedata.encode()] * 5 + [b"{broken"] * 5
    # A long flush interval: the rows can only reach disk through close().
    async with serve_gateway(table_routes(model_replicas), tmp_path, flush_interval=3600) as gw:
        replies = await asyncio.gather(*[gw.client.post("/groups/grp-t/predict", content=b) for b in bodies])
        assert not list((tmp_path / "inference").rglob("*.parquet"))
    frame = read_inference_table(tmp_path, "grp-t")
    assert len(frame) == len(bodies)
    assert list(frame.columns) == COLUMNS
    assert sorted(frame["request_id"]) == sorted(r.headers["x-request-id"] for r in replies)
    assert frame["status_code"].value_counts().to_dict() == {200: 35, 400: 5}
    assert (frame["client_request_id"] == "client-7").sum() == 5
    assert set(frame["group_id"]) == {"grp-t"} and set(frame["service_name"]) == {"name-svc-t"}
    assert (frame["latency_ms"] > 0).all() and frame["timestamp"].is_monotonic_increasing
    assert str(frame["timestamp"].dt.tz) == "UTC"
    ok = frame[frame["status_code"] == 200].iloc[0]
    assert json.loads(ok["request"]) == json.loads(IRIS_BODY) and "predictions" in json.loads(ok["response"])
    bad = frame[frame["status_code"] == 400].iloc[0]
    assert bad["request"] == "{broken" and "error_code" in json.loads(bad["response"])


@pytest.mark.anyio
async def test_rows_are_flushed_while_serving(tmp_path, model_replicas):
    async with serve_gateway(table_routes(model_replicas), tmp_path, flush_interval=0.1) as gw:
        for _ in range(3):
            assert (await gw.client.post("/groups/grp-t/predict", content=IRIS_BODY)).status_code == 200
        deadline = time.monotonic() + 5
        while len(read_inference_table(tmp_path, "grp-t")) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(read_inference_table(tmp_path, "grp-t")) == 3
        files = list((tmp_path / "inference" / "grp-t").glob("date=*/part-*.parquet"))
        assert files and not list((tmp_path / "inference").rglob("*.tmp"))


@pytest.mark.anyio
async def test_rate_limited_requests_have_rows_and_refused_keys_do_not(tmp_path, model_replicas):
    routes = RouteTable()
    routes.put_group(
        make_group(
            "grp-t", make_version("svc-t", "grp-t", table=True, rps=1.0), auth=True, token_hashes={token_hash("tok")}
        )
    )
    routes.set_replicas("svc-t", [model_replicas[0].replica()])
    async with serve_gateway(routes, tmp_path) as gw:
        statuses = []
        for headers in ({"Authorization": "tok"}, {"Authorization": "tok"}, {}):
            reply = await gw.client.post("/groups/grp-t/predict", content=IRIS_BODY, headers=headers)
            statuses.append(reply.status_code)
    assert statuses == [200, 429, 401]
    assert read_inference_table(tmp_path, "grp-t")["status_code"].tolist() == [200, 429]


@pytest.mark.anyio
async def test_a_version_without_the_table_writes_nothing(tmp_path, model_replicas):
    async with serve_gateway(table_routes(model_replicas, table=False), tmp_path) as gw:
        assert (await gw.client.post("/groups/grp-t/predict", content=IRIS_BODY)).status_code == 200
    assert read_inference_table(tmp_path, "grp-t").empty


def test_rows_land_in_one_folder_per_utc_date(tmp_path):
    day = 86_400.0
    unwritten = write_rows(
        tmp_path, [row(timestamp=1_700_000_000.0), row(timestamp=1_700_000_000.0 + day), row(group_id="grp-other")]
    )
    assert unwritten == []
    dates = sorted(p.name for p in (tmp_path / "grp-t").iterdir())
    assert dates == ["date=2023-11-14", "date=2023-11-15"]
    assert (tmp_path / "grp-other").is_dir()


def test_client_request_id_is_read_only_from_a_json_object(tmp_path):
    bodies = [b'{"client_request_id": 42}', b'["client_request_id"]', b'{"client_request_id": nope', b"{}"]
    write_rows(tmp_path / "inference", [row(body=b) for b in bodies])
    frame = read_inference_table(tmp_path, "grp-t")
    assert frame["client_request_id"].iloc[0] == "42" and frame["client_request_id"].iloc[1:].isna().all()


def test_a_failed_write_keeps_its_rows_and_leaves_no_partial_file(tmp_path):
    (tmp_path / "grp-t").write_text("a file where the group's folder should be")
    assert len(write_rows(tmp_path, [row(), row()])) == 2
    assert not list(tmp_path.rglob("*.tmp"))


def test_reading_an_unknown_group_gives_an_empty_frame_with_the_columns(tmp_path):
    frame = read_inference_table(tmp_path, "grp-none")
    assert frame.empty and list(frame.columns) == COLUMNS


@pytest.mark.parametrize("group_id", ["../etc", "..", "a/b", "", "grp x"])
def test_a_group_id_that_is_not_an_id_is_refused(tmp_path, group_id):
    with pytest.raises(ValueError, match="not a valid group id"):
        read_inference_table(tmp_path, group_id)


# ---- the journal: what a killed server leaves ----------------------------------------------


def test_a_row_is_on_disk_as_soon_as_it_is_appended_and_a_restart_makes_it_parquet(tmp_path):
    killed = InferenceTableWriter(tmp_path)
    for n in range(3):
        killed.append(row()._replace(request_id=f"r{n}"))
    # The server dies here: no flush, no close. The next one on the same data dir writes the rows.
    asyncio.run(InferenceTableWriter(tmp_path).close())
    assert sorted(read_inference_table(tmp_path, "grp-t")["request_id"]) == ["r0", "r1", "r2"]
    assert not segments(tmp_path / "inference" / JOURNAL_DIR)


def test_a_segment_made_into_parquet_again_after_a_crash_writes_no_row_twice(tmp_path):
    writer = InferenceTableWriter(tmp_path)
    writer.append(row())
    writer.append(row(group_id="grp-other"))
    closed = writer._journal.rotate()
    ((number, segment),) = segments(tmp_path / "inference" / JOURNAL_DIR)
    kept = segment.read_bytes()
    make_parquet(tmp_path / "inference", closed)
    segment.write_bytes(kept)  # as if the server died before it removed the segment
    make_parquet(tmp_path / "inference", closed)
    assert len(read_inference_table(tmp_path, "grp-t")) == 1
    assert len(read_inference_table(tmp_path, "grp-other")) == 1


def test_a_torn_last_frame_is_dropped_and_the_whole_ones_kept(tmp_path):
    frames = b"".join(encode(row()._replace(request_id=f"r{n}")) for n in range(3))
    assert [r.request_id for r in decode(frames[:-5])] == ["r0", "r1"]
    flipped = bytearray(frames)
    flipped[len(encode(row())) + 30] ^= 0xFF  # a bit flipped in the second frame
    assert [r.request_id for r in decode(bytes(flipped))] == ["r0"]
    assert list(decode(frames)) == [row()._replace(request_id=f"r{n}") for n in range(3)]


def test_a_segment_that_cannot_be_written_stays_until_it_can(tmp_path):
    obstacle = tmp_path / "inference" / "grp-t"
    obstacle.parent.mkdir(parents=True)
    obstacle.write_text("a file where the group's folder should be")
    writer = InferenceTableWriter(tmp_path)
    writer.append(row())
    asyncio.run(writer.flush())
    assert len(segments(tmp_path / "inference" / JOURNAL_DIR)) == 1
    obstacle.unlink()
    asyncio.run(writer.flush())
    assert len(read_inference_table(tmp_path, "grp-t")) == 1
    assert not segments(tmp_path / "inference" / JOURNAL_DIR)


def test_segment_numbers_never_repeat_across_restarts(tmp_path):
    numbers = []
    for _ in range(3):
        writer = InferenceTableWriter(tmp_path)
        writer.append(row())
        numbers.append(writer._journal.rotate())
        asyncio.run(writer.close())
    assert numbers == sorted(set(numbers))
    assert len(read_inference_table(tmp_path, "grp-t")) == 3


def test_a_full_disk_keeps_rows_up_to_the_bound_counts_the_dropped_and_says_so_once(tmp_path):
    told = []
    with small_disk(tmp_path / "inference", "1m") as disk:
        writer = InferenceTableWriter(tmp_path, max_pending_bytes=1000, on_trouble=lambda *a: told.append(a))
        ballast = fill(disk)
        for n in range(10):
            writer.append(row(body=b"x" * 100)._replace(request_id=f"r{n}"))
        assert (writer.pending, writer.dropped) == (8, 2)  # 8 × (100 + 20) bytes fit in 1000
        assert len(told) == 1 and told[0][:2] == ({"svc-t"}, False)
        ballast.unlink()
        asyncio.run(writer.close())
        assert sorted(read_inference_table(tmp_path, "grp-t")["request_id"]) == [f"r{n}" for n in range(2, 10)]
    assert told[1][:2] == ({"svc-t"}, True) and "2 rows were dropped" in told[1][2]
