"""Replicas never outlive their server: PR_SET_PDEATHSIG, and reaping a previous run's leftovers."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from tcdeploy.server.runtime import reap_orphans
from tcdeploy.server.runtime.launch import spawn
from tcdeploy.server.runtime.paths import RunPaths

from .runtime_helpers import alive, spec

pytestmark = pytest.mark.anyio

SERVER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from tcdeploy.server.runtime import LocalRuntime, ReplicaSpec

    def report(state):
        if state.pid:
            print(state.pid, flush=True)

    async def main():
        runtime = LocalRuntime(Path(sys.argv[1]), report)
        await runtime.start(ReplicaSpec("ms-orphan-00001", "svc-x", sys.argv[2], 1000, 2048))
        await asyncio.sleep(120)

    asyncio.run(main())
""")


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_replicas_die_with_a_killed_server(tmp_path, logistic_model_dir):
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(tmp_path / "data"), str(logistic_model_dir)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    replica_pid = None
    try:
        replica_pid = int(server.stdout.readline())
        assert alive(replica_pid)
        server.kill()
        server.wait(10)
        assert wait_gone(replica_pid), "PR_SET_PDEATHSIG must kill the replica with its server"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        if replica_pid is not None and alive(replica_pid):
            os.kill(replica_pid, signal.SIGKILL)


async def test_reap_orphans_kills_leftover_replicas_only(tmp_path, logistic_model_dir):
    data_dir = tmp_path / "data"
    paths = RunPaths(data_dir)
    paths.ensure()
    leftover = await spawn(sys.executable, spec("ms-left-00001", logistic_model_dir), paths.socket("ms-left-00001"))
    bystander = subprocess.Popen(["sleep", "60"])  # a pid file may point at a reused pid
    try:
        paths.write_pid("ms-left-00001", leftover.pid)
        paths.write_pid("ms-reused-00001", bystander.pid)
        (paths.run_dir / "ms-garbage-00001.pid").write_text("not a pid")
        paths.write_pid("ms-gone-00001", 2**22 + 1)  # above pid_max: no such process

        assert reap_orphans(data_dir) == [leftover.pid]

        # (reap_orphans may reap it before asyncio does: here, unlike in a real restart, it is our
        # own child; asyncio then reports 255 instead of -9.)
        assert await leftover.wait() in (-signal.SIGKILL, 255)
        assert not alive(leftover.pid)
        assert bystander.poll() is None, "only a tcdeploy replica of that pod is killed"
        assert list(paths.run_dir.glob("*.pid")) == []
        assert reap_orphans(data_dir) == []
    finally:
        if leftover.returncode is None:
            leftover.kill()
            await leftover.wait()
        bystander.kill()
        bystander.wait()


def test_reap_orphans_of_a_fresh_data_dir_does_nothing(tmp_path):
    assert reap_orphans(tmp_path / "never-used") == []


def test_sockets_of_a_deep_data_dir_go_to_a_private_temp_dir(tmp_path):
    deep = tmp_path / ("d" * 100)
    paths = RunPaths(deep)
    paths.ensure()
    try:
        short = paths.socket("ms-ab12cd34-x7k2p")
        assert short.parent == paths.fallback_socket_dir
        assert len(os.fsencode(short)) <= 107
        assert stat.S_IMODE(short.parent.stat().st_mode) == 0o700
        assert short.parent.stat().st_uid == os.getuid()
        assert RunPaths(deep).socket("ms-ab12cd34-x7k2p") == short, "the same dir after a restart"
        assert paths.pid_file("ms-ab12cd34-x7k2p").parent == deep.resolve() / "run"
    finally:
        shutil.rmtree(paths.fallback_socket_dir, ignore_errors=True)


def test_short_data_dirs_keep_sockets_in_run(tmp_path):
    paths = RunPaths(tmp_path)
    expected = tmp_path.resolve() / "run" / "ms-ab12cd34-x7k2p.sock"
    assert paths.socket("ms-ab12cd34-x7k2p") == expected


def test_a_process_is_recognised_as_replica_by_module_and_pod_name():
    from tcdeploy.server.runtime.paths import is_replica_of

    assert not is_replica_of(psutil.Process(), "ms-any-00001")
