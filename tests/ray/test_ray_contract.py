"""The runtime contract tests the local runtime passes, against RayRuntime on the two-node cluster."""

from __future__ import annotations

import psutil
import pytest

from tcdeploy.server.runtime.ray_runtime import RayOptions, RayRuntime
from tests.server.runtime.runtime_helpers import FAST_BACKOFF, spec
from tests.server.runtime.test_runtime_fleet import (  # noqa: F401  (collected here, on Ray)
    test_adopt_keeps_names_apply_waits_for_them_and_remove_stops_all,
    test_roll_keeps_a_ready_pod_refuses_a_broken_model_and_scales_down,
)
from tests.server.runtime.test_runtime_process import (  # noqa: F401
    test_quick_exits_become_a_crash_loop_that_clears_when_ready,
    test_replica_over_its_memory_limit_is_oom_killed,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def runtime(tmp_path, recorder, ray_cluster):
    """A RayRuntime of its own namespace; its pods stopped afterwards (close leaves them running)."""
    rt = RayRuntime(
        tmp_path / "data",
        recorder,
        options=RayOptions(address=ray_cluster.address),
        replica_token=lambda pod: f"token-of-{pod}",
        backoff=FAST_BACKOFF,
        crash_loop_window=30.0,
    )
    rt.connect()
    try:
        yield rt
    finally:
        for state in rt.states():
            await rt.stop(state.pod_name, 5)
        await rt.close()


async def test_actor_restarts_by_ray_count_back_off_and_become_a_crash_loop(runtime, recorder, logistic_model_dir):
    """Ray restarts a killed actor at once; our rule still applies: restarts counted on, backoff,
    and a crash loop after `crash_loop_restarts` in the window, cleared once ready."""
    pod = "ms-rayloop-00001"
    await runtime.start(spec(pod, logistic_model_dir))
    killed: set[int] = set()
    for _ in range(3):  # the runtime's crash_loop_restarts
        started = await recorder.until(lambda s: s.pid not in (None, *killed), timeout=60)
        killed.add(started.pid)
        psutil.Process(started.pid).parent().kill()  # the actor's process: its replica dies with it

    looping = await recorder.until(lambda s: s.crash_looping, timeout=60)
    assert looping.reason == "CrashLoopBackOff" and "restarted by Ray" in looping.message
    assert f"starting in {FAST_BACKOFF[-1]:g} s" in looping.message, "max backoff in a crash loop"
    ready = await recorder.until(lambda s: s.ready and s.pid not in killed)
    assert not ready.crash_looping and ready.restart_count == 3
