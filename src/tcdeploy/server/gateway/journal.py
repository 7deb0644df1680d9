"""The inference table's write-ahead journal: every row is written to a segment file before its
reply leaves the gateway, so a server killed with SIGKILL loses no answered request's row (the
kernel holds what `write` was given; only a power cut can take the page cache with it).

A segment is a run of frames, one a row:

    magic(2) crc32(4) meta_len(4) request_len(4) response_len(4) | meta | request | response

`meta` is the row's small fields as JSON; the bodies stay raw bytes, so the request path never
decodes them. A frame cut short by a crash, or one whose checksum does not match, ends the
segment's readable part: what follows it is dropped with a warning (it was never acknowledged
whole).

Segments are numbered by the microsecond they were opened (and always above every number in the
folder), so numbers never repeat across restarts: a segment's number names the Parquet files made
of it. The writer appends to the newest; at each flush it closes it, and the closed ones are made
into Parquet (see `inference_table`).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

_MAGIC = 0x7464  # "td"
_HEADER = struct.Struct("<HIIII")
_PREFIX = "segment-"
_SUFFIX = ".journal"


class Row(NamedTuple):
    """What the request path records; the flush thread turns it into a table row."""

    request_id: str
    group_id: str
    service_id: str
    service_name: str
    version: str
    timestamp: float  # epoch seconds
    latency_ms: float
    status_code: int
    request: bytes
    response: bytes


def encode(row: Row) -> bytes:
    meta = json.dumps(row[:8], separators=(",", ":")).encode()
    crc = zlib.crc32(row.response, zlib.crc32(row.request, zlib.crc32(meta)))
    return b"".join(
        (_HEADER.pack(_MAGIC, crc, len(meta), len(row.request), len(row.response)), meta, row.request, row.response)
    )


def decode(data: bytes) -> Iterator[Row]:
    """The whole frames at the start of `data`, in order; stops at the first torn or corrupt one."""
    offset = 0
    while offset < len(data):
        frame = _frame_at(data, offset)
        if frame is None:
            log.warning("inference journal: %d bytes after a torn or corrupt frame dropped", len(data) - offset)
            return
        row, offset = frame
        yield row


def _frame_at(data: bytes, offset: int) -> tuple[Row, int] | None:
    if len(data) - offset < _HEADER.size:
        return None
    magic, crc, meta_len, request_len, response_len = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    end = start + meta_len + request_len + response_len
    if magic != _MAGIC or end > len(data):
        return None
    meta = data[start : start + meta_len]
    request = data[start + meta_len : start + meta_len + request_len]
    response = data[start + meta_len + request_len : end]
    if zlib.crc32(response, zlib.crc32(request, zlib.crc32(meta))) != crc:
        return None
    return Row(*json.loads(meta), request, response), end


class Journal:
    """Appends rows to the current segment; `rotate` closes it and starts the next."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        existing = [number for number, _ in segments(directory)]
        self._number = max(existing, default=0)
        self._fd: int | None = None
        self._size = 0

    def append(self, row: Row) -> None:
        """Write one row; raises OSError (a full disk, say) with the segment left as it was."""
        frame = encode(row)
        fd = self._open()
        try:
            written = os.write(fd, frame)
        except OSError:
            os.ftruncate(fd, self._size)
            raise
        if written != len(frame):  # a short write: the disk filled mid-frame
            os.ftruncate(fd, self._size)
            raise OSError(f"inference journal: wrote {written} of {len(frame)} bytes")
        self._size += written

    def rotate(self) -> int:
        """Close the current segment; the next row starts a new one. Returns the number of the last
        segment closed: every segment up to it is complete."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return self._number

    def _open(self) -> int:
        if self._fd is None:
            self._number = max(self._number + 1, time.time_ns() // 1_000)
            path = self.directory / f"{_PREFIX}{self._number:020d}{_SUFFIX}"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            self._size = 0
        return self._fd


def segments(directory: Path, upto: int | None = None) -> list[tuple[int, Path]]:
    """The segments in `directory` (numbered up to `upto`, if given), oldest first."""
    found = []
    for path in directory.glob(f"{_PREFIX}*{_SUFFIX}"):
        number = path.name[len(_PREFIX) : -len(_SUFFIX)]
        if number.isdigit() and (upto is None or int(number) <= upto):
            found.append((int(number), path))
    return sorted(found)
