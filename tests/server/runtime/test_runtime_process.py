"""LocalRuntime with real replica processes and real MLflow models."""

from __future__ import annotations

import asyncio
import os
import signal
import stat

import httpx
import pytest

from tcdeploy.server.runtime import LocalRuntime, ReplicaSpec, read_logs

from .runtime_helpers import (
    FAST_BACKOFF,
    LOAD_TIMEOUT,
    Recorder,
    alive,
    eventually,
    replica_processes,
    spec,
)

pytestmark = pytest.mark.anyio


def log_messages(runtime: LocalRuntime, pod_name: str) -> list[str]:
    lines, _ = read_logs(runtime.data_dir, [pod_name], limit=1000)
    return [line.msg for line in lines]


async def test_replica_serves_restarts_rebuilds_stops_and_logs(runtime, recorder, logistic_model_dir):
    pod = "ms-life-00001"
    await runtime.start(spec(pod, logistic_model_dir))
    first = await runtime.wait_ready(pod, LOAD_TIMEOUT)

    assert (first.phase, first.ready, first.restart_count, first.reason) == ("Running", True, 0, "")
    run_dir = runtime.data_dir / "run"
    assert first.address == str(run_dir / f"{pod}.sock")
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert (run_dir / f"{pod}.pid").read_text().strip() == str(first.pid)
    transport = httpx.AsyncHTTPTransport(uds=first.address)
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get("http://replica/ping")).status_code == 200
    await eventually(lambda: runtime.usage(pod) is not None, 5, "sampled")
    cpu, rss = runtime.usage(pod)
    assert cpu >= 0 and rss > 50 * 2**20

    # Killed from outside: it is not ready at once, and started again within the backoff.
    os.kill(first.pid, signal.SIGKILL)
    respawned = await recorder.until(lambda s: s.pid not in (None, first.pid), timeout=5)
    assert respawned.restart_count == 1 and not respawned.ready
    messages = log_messages(runtime, pod)
    assert "killed by SIGKILL" in messages
    assert "restarting in 0.1 s (restart #1)" in messages

    # Rebuilt while it loads: another process, counted too.
    await runtime.rebuild(pod)
    rebuilt = await runtime.wait_ready(pod, LOAD_TIMEOUT)
    assert rebuilt.ready and rebuilt.restart_count == 2
    assert rebuilt.pid not in (first.pid, respawned.pid) and not alive(respawned.pid)

    await runtime.stop(pod, grace=10)
    assert not alive(rebuilt.pid)
    assert recorder.states[-1].phase == "Stopped"
    assert runtime.state(pod) is None and runtime.states() == []
    assert not (run_dir / f"{pod}.pid").exists() and not (run_dir / f"{pod}.sock").exists()
    reported = len(recorder.states)
    await asyncio.sleep(0.5)
    assert len(recorder.states) == reported, "nothing may happen to a stopped pod"
    assert replica_processes() == []

    lines, more = read_logs(runtime.data_dir, [pod], limit=1000)
    assert not more
    messages = [line.msg for line in lines]
    assert messages[-1] == "stopped"
    after_stop = messages[messages.index("stopping (grace 10 s)") :]
    assert "killed by SIGKILL" not in after_stop, "SIGTERM was enough: a graceful stop"
    assert [line.id for line in lines] == list(range(1, len(lines) + 1))
    assert all(b.ts >= a.ts for a, b in zip(lines, lines[1:]))
    assert {"event"} < {line.stream for line in lines}, "the replica's own output is kept"
    assert sum(m.startswith("started pid ") for m in messages) == 3
    assert sum(m.startswith("ready after ") for m in messages) == 2
    assert any("loaded" in line.msg.lower() for line in lines if line.stream != "event")


async def test_model_that_cannot_load_fails_without_restart(tmp_path, broken_model_dir):
    """Also: an `on_change` that raises does not stop the supervisor."""
    seen = Recorder()

    def on_change(state):
        seen(state)
        raise RuntimeError("a buggy callback")

    runtime = LocalRuntime(tmp_path / "data", on_change, backoff=FAST_BACKOFF)
    pod = "ms-broken-00001"
    try:
        await runtime.start(spec(pod, broken_model_dir))
        failed = await runtime.wait_ready(pod, LOAD_TIMEOUT)
        assert (failed.phase, failed.ready, failed.reason) == ("Failed", False, "LoadFailed")
        assert "broken on purpose" in failed.message
        assert failed.pid is None and failed.restart_count == 0
        await asyncio.sleep(1.0)
        assert runtime.state(pod) == failed, "a model that cannot load is not restarted"
        assert sum(m.startswith("started pid") for m in log_messages(runtime, pod)) == 1
        assert replica_processes() == []
    finally:
        await runtime.close()
    assert seen.states[-1].phase == "Stopped"


async def test_quick_exits_become_a_crash_loop_that_clears_when_ready(runtime, recorder, logistic_model_dir):
    pod = "ms-loop-00001"
    await runtime.start(spec(pod, logistic_model_dir))
    killed: set[int] = set()
    for _ in range(3):  # runtime's crash_loop_restarts
        started = await recorder.until(lambda s: s.pid not in (None, *killed), timeout=10)
        os.kill(started.pid, signal.SIGKILL)
        killed.add(started.pid)

    looping = await recorder.until(lambda s: s.crash_looping, timeout=10)
    assert looping.reason == "CrashLoopBackOff" and not looping.ready
    assert "crash loop" in looping.message and "killed by SIGKILL" in looping.message
    assert f"restarting in {FAST_BACKOFF[-1]:g} s" in looping.message, "max backoff in a crash loop"
    state = await runtime.wait_ready(pod, 1)
    assert state.crash_looping, "wait_ready returns a crash-looping pod rather than wait on"

    ready = await recorder.until(lambda s: s.ready)
    assert not ready.crash_looping and ready.reason == "" and ready.restart_count == 3


async def test_replica_over_its_memory_limit_is_oom_killed(runtime, recorder, logistic_model_dir):
    pod = "ms-oom-00001"
    await runtime.start(spec(pod, logistic_model_dir, memory_mb=50))
    oom = await recorder.until(lambda s: s.reason == "OOMKilled", timeout=30)
    assert not oom.ready and "OOMKilled" in oom.message
    assert any(m.startswith("OOMKilled at ") and m.endswith("(limit 50 MiB)") for m in log_messages(runtime, pod))
    await runtime.stop(pod, grace=1)


async def test_replica_not_ready_in_time_is_killed_and_retried(tmp_path, recorder, logistic_model_dir):
    runtime = LocalRuntime(tmp_path / "data", recorder, backoff=FAST_BACKOFF, ready_timeout=0.3)
    pod = "ms-slow-00001"
    try:
        await runtime.start(spec(pod, logistic_model_dir))
        slow = await recorder.until(lambda s: s.reason == "ReadyTimeout", timeout=10)
        assert not slow.ready and "not ready in time" in slow.message
        assert "not ready after 0.3 s; killing it" in log_messages(runtime, pod)
        await recorder.until(lambda s: s.restart_count == 1 and s.pid is not None, timeout=10)
    finally:
        await runtime.close()
    assert replica_processes() == []


async def test_close_leaves_no_process_and_refuses_new_pods(runtime, recorder, logistic_model_dir):
    for pod in ("ms-close-00001", "ms-close-00002"):
        await runtime.start(spec(pod, logistic_model_dir))
    with pytest.raises(ValueError, match="already exists"):
        await runtime.start(spec("ms-close-00001", logistic_model_dir))
    with pytest.raises(TimeoutError, match="not ready after"):
        await runtime.wait_ready("ms-close-00001", 0.05)
    with pytest.raises(KeyError):
        await runtime.wait_ready("ms-unknown-00001", 1)
    with pytest.raises(KeyError):
        await runtime.rebuild("ms-unknown-00001")
    await runtime.stop("ms-unknown-00001")  # stopping what is not there is a no-op

    started = [
        await recorder.until(lambda s, p=pod: s.pod_name == p and s.pid is not None, 10)
        for pod in ("ms-close-00001", "ms-close-00002")
    ]
    await runtime.close()
    assert not any(alive(s.pid) for s in started)
    assert replica_processes() == []
    assert runtime.states() == []
    with pytest.raises(RuntimeError, match="closed"):
        await runtime.start(spec("ms-close-00003", logistic_model_dir))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pod_name", "../etc", "pod_name"),
        ("memory_mb", 0, "memory_mb: must be > 0"),
        ("cpu_millicores", -1, "cpu_millicores"),
        ("max_batch_size", "8", "max_batch_size: must be a number"),
        ("env", {"A=B": "c"}, "env"),
    ],
)
def test_spec_refuses_bad_values(field, value, message):
    fields = {
        "pod_name": "ms-ok-00001",
        "service_id": "svc-1",
        "model_uri": "/models/m",
        "cpu_millicores": 1000,
        "memory_mb": 512,
        field: value,
    }
    with pytest.raises(ValueError, match=message):
        ReplicaSpec(**fields)
