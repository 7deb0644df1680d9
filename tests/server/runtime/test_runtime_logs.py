"""Per-pod log files: ids, merging pods, time ranges, cursors, rotation, torn lines."""

from __future__ import annotations

import fnmatch
import json

import pytest

from tcdeploy.server.runtime import pod_log_names, read_logs, tail_logs
from tcdeploy.server.runtime.logs import MAX_LINE_CHARS, PodLog, log_dir


def write_lines(data_dir, pod_name, count, **kwargs) -> list:
    log = PodLog(log_dir(data_dir), pod_name, **kwargs)
    try:
        return [log.write("stdout", f"{pod_name} line {i}") for i in range(count)]
    finally:
        log.close()


def read_all(data_dir, pods, page, **kwargs) -> list:
    """Page through every line with the cursor, checking the `more` flag on the way."""
    got, after = [], None
    while True:
        lines, more = read_logs(data_dir, pods, after=after, limit=page, **kwargs)
        got += lines
        if not more:
            return got
        assert len(lines) == page
        after = lines[-1].cursor


def test_ids_continue_across_restarts_and_lines_are_json(tmp_path):
    first = write_lines(tmp_path, "ms-a-00001", 3)
    second = write_lines(tmp_path, "ms-a-00001", 2)
    assert [line.id for line in first + second] == [1, 2, 3, 4, 5]
    raw = (tmp_path / "logs" / "ms-a-00001.log").read_text().splitlines()
    assert json.loads(raw[0]) == {"id": 1, "ts": first[0].ts, "stream": "stdout", "msg": "ms-a-00001 line 0"}


def test_pods_merge_by_time_and_pages_continue_with_the_cursor(tmp_path):
    for _ in range(3):  # interleave the pods in time
        for pod in ("ms-a-00001", "ms-a-00002", "ms-b-00001"):
            write_lines(tmp_path, pod, 4)

    wanted = [n for n in pod_log_names(tmp_path) if fnmatch.fnmatch(n, "ms-a-*")]
    assert wanted == ["ms-a-00001", "ms-a-00002"]
    everything = read_all(tmp_path, wanted, page=5)
    assert len(everything) == 24
    assert [line.cursor for line in everything] == sorted(line.cursor for line in everything)
    assert {line.pod_name for line in everything} == set(wanted)
    assert len({(line.pod_name, line.id) for line in everything}) == 24, "no line twice"
    assert read_all(tmp_path, wanted, page=1000) == everything


def test_time_range_is_inclusive(tmp_path):
    lines = write_lines(tmp_path, "ms-a-00001", 10)
    start, end = lines[3].ts, lines[6].ts
    got = read_all(tmp_path, ["ms-a-00001"], page=2, start=start, end=end)
    assert [line.id for line in got] == [4, 5, 6, 7]


def test_unknown_pods_and_empty_dirs_read_as_nothing(tmp_path):
    assert pod_log_names(tmp_path) == []
    assert read_logs(tmp_path, ["ms-none-00001"], limit=10) == ([], False)


def test_half_written_last_line_is_skipped_until_complete(tmp_path):
    write_lines(tmp_path, "ms-a-00001", 2)
    path = tmp_path / "logs" / "ms-a-00001.log"
    with open(path, "a") as f:
        f.write('{"id": 3, "ts": 1.0, "stream": "stdout", "ms')
    assert [line.id for line in read_logs(tmp_path, ["ms-a-00001"], limit=10)[0]] == [1, 2]
    # A writer opened afterwards still counts on from the last complete line.
    with open(path, "a") as f:
        f.write("\n")
    assert write_lines(tmp_path, "ms-a-00001", 1)[0].id == 3


def test_rotation_keeps_one_old_file_and_reads_both(tmp_path):
    write_lines(tmp_path, "ms-a-00001", 40, max_bytes=1500)
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["ms-a-00001.log", "ms-a-00001.log.1"]
    lines = read_all(tmp_path, ["ms-a-00001"], page=7)
    ids = [line.id for line in lines]
    assert ids == list(range(ids[0], 41)) and ids[0] > 1, "the oldest lines rotate away"
    assert pod_log_names(tmp_path) == ["ms-a-00001"]


def test_very_long_lines_are_cut(tmp_path):
    log = PodLog(log_dir(tmp_path), "ms-a-00001")
    line = log.write("stderr", "x" * (MAX_LINE_CHARS * 2))
    log.close()
    assert len(line.msg) < MAX_LINE_CHARS + 20 and line.msg.endswith("[truncated]")


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_limit_must_be_a_positive_integer(tmp_path, limit):
    with pytest.raises(ValueError, match="limit"):
        read_logs(tmp_path, ["ms-a-00001"], limit=limit)


def test_pod_names_that_are_not_file_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="pod_name"):
        read_logs(tmp_path, ["../../etc/passwd"], limit=1)


def test_tail_reads_the_last_lines_across_the_rotated_file(tmp_path):
    write_lines(tmp_path, "ms-a-00001", 40, max_bytes=1500)
    everything = read_all(tmp_path, ["ms-a-00001"], page=100)
    assert tail_logs(tmp_path, "ms-a-00001", 3) == everything[-3:]
    assert tail_logs(tmp_path, "ms-a-00001", 1000) == everything
    assert tail_logs(tmp_path, "ms-b-00001", 5) == []
    with pytest.raises(ValueError, match="n: must be"):
        tail_logs(tmp_path, "ms-a-00001", 0)


def test_tail_of_a_large_file_reads_back_far_enough(tmp_path):
    write_lines(tmp_path, "ms-a-00001", 3000)  # ~250 KB: more than one read chunk
    assert [line.id for line in tail_logs(tmp_path, "ms-a-00001", 2)] == [2999, 3000]
    assert [line.id for line in tail_logs(tmp_path, "ms-a-00001", 2500)] == list(range(501, 3001))
