"""Per-pod log files: JSON lines written while the replica runs, read back by time and cursor.

A line is `{"id": int, "ts": epoch float, "stream": "stdout"|"stderr"|"event", "msg": str}`. Ids
grow by one per line for the life of the pod name, across restarts of the replica and of the
server. Each line is written with one `write` and flushed, so readers can read a file that is
being written; a reader that meets a half-written last line skips it.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tcdeploy.server.runtime.spec import check_pod_name, is_pod_name

STDOUT = "stdout"
STDERR = "stderr"
EVENT = "event"

# Past this size the file is renamed to `<pod>.log.1` (replacing the older one) and a new one begun:
# a chatty replica on a long-running server must not fill the disk.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
MAX_LINE_CHARS = 16 * 1024
_TAIL_KEPT = 50
_READ_CHUNK = 64 * 1024

Cursor = tuple[float, str, int]


@dataclass(frozen=True)
class LogLine:
    pod_name: str
    id: int
    ts: float
    stream: str
    msg: str

    @property
    def cursor(self) -> Cursor:
        """Sort key, and what to pass as `after` to continue reading after this line."""
        return (self.ts, self.pod_name, self.id)


def log_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "logs"


def _files_of(directory: Path, pod_name: str) -> list[Path]:
    """The pod's files, oldest first."""
    current = directory / f"{pod_name}.log"
    return [current.with_name(current.name + ".1"), current]


class PodLog:
    """Appends one pod's lines to `<data_dir>/logs/<pod>.log`; keeps the last few in memory."""

    def __init__(self, directory: Path, pod_name: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.pod_name = check_pod_name(pod_name)
        self.path = Path(directory) / f"{pod_name}.log"
        self._max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Ids go on from the pod's previous lines: a restarted server must not repeat them.
        self._next_id = max(_last_id(p) for p in _files_of(self.path.parent, pod_name)) + 1
        self._file = open(self.path, "ab")
        self._size = self._file.tell()
        self._tail: deque[str] = deque(maxlen=_TAIL_KEPT)

    def write(self, stream: str, msg: str, ts: float | None = None) -> LogLine:
        """Append a line, stamped now or at `ts` (a line written first elsewhere, on a Ray node)."""
        if len(msg) > MAX_LINE_CHARS:
            msg = msg[:MAX_LINE_CHARS] + " …[truncated]"
        line = LogLine(self.pod_name, self._next_id, time.time() if ts is None else ts, stream, msg)
        self._next_id += 1
        record = {"id": line.id, "ts": line.ts, "stream": stream, "msg": msg}
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", errors="replace")
        self._file.write(data)
        self._file.flush()  # readers (ListMLServiceLogs) see each line as soon as it is written
        self._size += len(data)
        self._tail.append(msg)
        if self._size > self._max_bytes:
            self._rotate()
        return line

    def event(self, msg: str) -> LogLine:
        return self.write(EVENT, msg)

    def tail(self, n: int = 20) -> list[str]:
        return list(self._tail)[-n:]

    def close(self) -> None:
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._file = open(self.path, "ab")
        self._size = 0


def _last_id(path: Path) -> int:
    """The id of the last complete line of a log file (0 if none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _READ_CHUNK))
            chunk = f.read()
    except FileNotFoundError:
        return 0
    for raw in reversed(chunk.splitlines()):
        record = _parse(raw)
        if record is not None:
            return record["id"]
    return 0


def _parse(raw: bytes | str) -> dict | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None  # a half-written last line, or a torn first line of a tail chunk
    if not isinstance(record, dict) or not isinstance(record.get("id"), int):
        return None
    if not isinstance(record.get("ts"), (int, float)):
        return None
    return record


async def pump_lines(reader: asyncio.StreamReader, on_line: Callable[[str], None]) -> None:
    """Feed every line of `reader` to `on_line` until EOF; very long lines are cut, not fatal."""
    pending = b""
    while chunk := await reader.read(_READ_CHUNK):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            on_line(_decode(raw))
        if len(pending) > MAX_LINE_CHARS * 4:
            on_line(_decode(pending))
            pending = b""
    if pending:
        on_line(_decode(pending))


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


def pod_log_names(data_dir: Path) -> list[str]:
    """Pods that have log files (callers match `*` wildcards against these with fnmatch)."""
    directory = log_dir(data_dir)
    if not directory.is_dir():
        return []
    names = {path.name.removesuffix(".1") for path in directory.iterdir()}
    return sorted(name[:-4] for name in names if name.endswith(".log") and is_pod_name(name[:-4]))


def read_logs(
    data_dir: Path,
    pod_names: Iterable[str],
    *,
    start: float | None = None,
    end: float | None = None,
    after: Cursor | None = None,
    before: Cursor | None = None,
    keyword: str | None = None,
    newest_first: bool = False,
    limit: int = 100,
) -> tuple[list[LogLine], bool]:
    """Up to `limit` lines of these pods, oldest first (or newest first), and whether more exist.

    `start`/`end` bound the timestamps (both inclusive); `after`/`before` are cursors of lines a
    previous call returned (oldest-first and newest-first paging); `keyword` keeps the lines that
    contain it. Reads files, so async callers should run it in a thread.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit: must be a positive integer, got {limit!r}")
    directory = log_dir(data_dir)
    wanted = _lines(directory, sorted({check_pod_name(n) for n in pod_names}), start, end, after)
    if before is not None:
        wanted = (line for line in wanted if line.cursor < before)
    if keyword:
        wanted = (line for line in wanted if keyword in line.msg)
    pick = heapq.nlargest if newest_first else heapq.nsmallest
    found = pick(limit + 1, wanted, key=lambda line: line.cursor)
    return found[:limit], len(found) > limit


def tail_logs(data_dir: Path, pod_name: str, n: int = 20) -> list[LogLine]:
    """The last `n` lines of one pod, oldest first, reading only the end of its files."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    lines: list[LogLine] = []
    for path in reversed(_files_of(log_dir(data_dir), check_pod_name(pod_name))):
        lines = _tail_file(path, pod_name, n - len(lines)) + lines
        if len(lines) >= n:
            break
    return lines


def _tail_file(path: Path, pod_name: str, n: int) -> list[LogLine]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return []
    with f:
        size = f.seek(0, os.SEEK_END)
        span = _READ_CHUNK
        while True:
            f.seek(max(0, size - span))
            raw_lines = f.read().splitlines()
            if span < size:
                raw_lines = raw_lines[1:]  # the first one is probably cut
            if len(raw_lines) > n or span >= size:
                break
            span *= 4
    lines = [_to_line(pod_name, record) for record in map(_parse, raw_lines) if record]
    return lines[-n:]


def _lines(
    directory: Path,
    pod_names: list[str],
    start: float | None,
    end: float | None,
    after: Cursor | None,
) -> Iterator[LogLine]:
    for pod_name in pod_names:
        for path in _files_of(directory, pod_name):
            for line in _read_file(path, pod_name):
                if start is not None and line.ts < start:
                    continue
                if end is not None and line.ts > end:
                    continue
                if after is not None and line.cursor <= tuple(after):
                    continue
                yield line


def _read_file(path: Path, pod_name: str) -> Iterator[LogLine]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for raw in f:
            record = _parse(raw)
            if record is not None:
                yield _to_line(pod_name, record)


def _to_line(pod_name: str, record: dict) -> LogLine:
    return LogLine(
        pod_name, record["id"], float(record["ts"]), str(record.get("stream", "")), str(record.get("msg", ""))
    )
