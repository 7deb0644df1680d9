"""CPU and memory of replica process trees, sampled with psutil."""

from __future__ import annotations

import psutil


class UsageSampler:
    """Keeps psutil handles between samples: cpu_percent measures since the previous call."""

    def __init__(self) -> None:
        self._handles: dict[int, psutil.Process] = {}

    def sample(self, pids: list[int]) -> dict[int, tuple[float, int]]:
        """{root pid: (cpu percent, rss bytes)} summed over each root and its descendants.

        RSS is summed per process, so pages shared between a replica and a forked child count
        twice: the limit errs on the strict side, as a cgroup that counts them once would not.
        """
        seen: set[int] = set()
        usage = {}
        for pid in pids:
            tree = self._tree(pid)
            if not tree:
                continue
            cpu, rss = 0.0, 0
            for proc in tree:
                try:
                    cpu += proc.cpu_percent(interval=None)
                    rss += proc.memory_info().rss
                    seen.add(proc.pid)
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            usage[pid] = (cpu, rss)
        self._handles = {pid: h for pid, h in self._handles.items() if pid in seen}
        return usage

    def _tree(self, pid: int) -> list[psutil.Process]:
        root = self._handle(pid)
        if root is None:
            return []
        try:
            children = root.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return []
        return [root, *(self._handles.setdefault(child.pid, child) for child in children)]

    def _handle(self, pid: int) -> psutil.Process | None:
        handle = self._handles.get(pid)
        if handle is not None and handle.is_running():
            return handle
        try:
            handle = self._handles[pid] = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return None
        return handle
