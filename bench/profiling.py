"""Optional sampling profiles of a server's processes during a measured run, with py-spy.

py-spy is a dev tool, not a dependency: `.venv/bin/pip install py-spy`. Profiles are written as
collapsed stacks (one `frame;frame;... count` line per stack, the input of flamegraph.pl and
speedscope) and summarised as the functions holding the most samples.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
from cpumeter import role_of
from procs import process_tree


def find_py_spy() -> str | None:
    beside_python = Path(sys.executable).with_name("py-spy")
    return str(beside_python) if beside_python.exists() else shutil.which("py-spy")


class Profiler:
    """Records every busy process of a server's tree for `duration_s` (started on enter)."""

    def __init__(self, py_spy: str, root_pid: int, duration_s: float, out_dir: Path, tag: str) -> None:
        self.py_spy, self.root_pid, self.duration_s = py_spy, root_pid, duration_s
        self.out_dir, self.tag = out_dir, tag
        self.outputs: dict[str, Path] = {}
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> Profiler:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for proc in process_tree(self.root_pid):
            role = role_of(proc, self.root_pid)
            if role in ("gone", "bash") or not _is_python(proc):
                continue
            output = self.out_dir / f"{self.tag}-{role}-{proc.pid}.txt"
            self.outputs[f"{role}-{proc.pid}"] = output
            self._procs.append(
                subprocess.Popen(
                    [
                        self.py_spy,
                        "record",
                        "--pid",
                        str(proc.pid),
                        "--duration",
                        str(max(1, round(self.duration_s))),
                        "--rate",
                        "200",
                        "--nonblocking",
                        "--format",
                        "raw",
                        "--output",
                        str(output),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return self

    def __exit__(self, *exc) -> None:
        for proc in self._procs:
            try:
                proc.wait(self.duration_s + 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def profiled(py_spy: str, root_pid: int, duration_s: float, out_dir: Path, tag: str) -> Iterator[Profiler]:
    """Profile a run, then write beside the stacks which functions held the samples."""
    with Profiler(py_spy, root_pid, duration_s, out_dir, tag) as profiler:
        yield profiler
    summaries = [summarise(path) for path in profiler.outputs.values() if path.exists()]
    (out_dir / f"{tag}-summary.txt").write_text("\n\n".join(summaries) + "\n")


def _is_python(proc: psutil.Process) -> bool:
    try:
        return "python" in proc.name() or "python" in (proc.cmdline() or [""])[0]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def read_collapsed(path: Path) -> Counter:
    stacks: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def summarise(path: Path, top: int = 15) -> str:
    """Functions by share of samples: inclusive (anywhere on the stack) and self (the leaf).

    Frames on nearly every stack (the event loop, the thread bootstrap) say nothing and are left out.
    """
    stacks = read_collapsed(path)
    total = sum(stacks.values())
    if not total:
        return f"{path.name}: no samples"
    inclusive: Counter = Counter()
    leaf: Counter = Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[_short(frame)] += count
        leaf[_short(frames[-1])] += count
    lines = [f"{path.name}: {total} samples"]
    shown = [(f, c) for f, c in inclusive.most_common() if c < 0.97 * total][:top]
    lines += [f"  incl {100 * c / total:5.1f}%  {f}" for f, c in shown]
    lines += [f"  self {100 * c / total:5.1f}%  {f}" for f, c in leaf.most_common(top // 2)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """`func (/long/path/site-packages/pkg/mod.py:12)` -> `func (pkg/mod.py:12)`."""
    name, _, where = frame.partition(" (")
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where}" if where else name
