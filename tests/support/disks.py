"""A small filesystem to fill: a tmpfs of a given size mounted on a folder (root only)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(path: Path, size: str = "2m") -> Iterator[Path]:
    """Mount a tmpfs of `size` on `path` for the block; skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small filesystem cannot be mounted here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Write a ballast file until the filesystem under `path` is full; return it (delete it to
    give the space back)."""
    ballast = path / "ballast"
    with open(ballast, "wb") as f:
        chunk = b"\0" * 65536
        while True:
            try:
                f.write(chunk)
                f.flush()
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
        # Fill the last bytes too: a chunk that did not fit may leave a little room.
        for size in (4096, 512, 1):
            try:
                while True:
                    os.write(f.fileno(), b"\0" * size)
            except OSError:
                pass
    return ballast
