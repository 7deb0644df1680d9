"""Fleet: a service's replicas rolled, scaled and stopped with real replicas and models."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tcdeploy.server.runtime import Fleet, ReplicaTemplate

from .runtime_helpers import LOAD_TIMEOUT, alive

pytestmark = pytest.mark.anyio

SERVICE = "svc-fleet001"


class ControlPlane:
    """What the control plane gives the fleet: drain (recorded) and pod names."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.drained: list[tuple[str, bool]] = []  # (pod, was it still alive when drained)
        self._numbers = itertools.count(1)

    async def drain(self, pod_name: str) -> None:
        state = self.runtime.state(pod_name)
        self.drained.append((pod_name, state is not None and state.pid is not None))
        await asyncio.sleep(0)

    def new_pod_name(self, service_id: str) -> str:
        return f"ms-{service_id.removeprefix('svc-')}-{next(self._numbers):05d}"


class ReadyWatch:
    """Polls the service's pods in the background and remembers the fewest ready ones seen."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.fewest_ready: int | None = None
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            ready = sum(s.ready for s in self.fleet.pods(SERVICE))
            fewest = self.fewest_ready
            self.fewest_ready = ready if fewest is None else min(fewest, ready)
            await asyncio.sleep(0.005)

    async def stop(self) -> int:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.fewest_ready


def template(model) -> ReplicaTemplate:
    return ReplicaTemplate(service_id=SERVICE, model_uri=str(model), cpu_millicores=500, memory_mb=2048)


def models_of(runtime) -> dict[str, str]:
    return {s.pod_name: runtime.spec(s.pod_name).model_uri for s in runtime.states(SERVICE)}


async def test_roll_keeps_a_ready_pod_refuses_a_broken_model_and_scales_down(
    runtime, logistic_model_dir, forest_model_dir, broken_model_dir
):
    plane = ControlPlane(runtime)
    fleet = Fleet(runtime, drain=plane.drain, new_pod_name=plane.new_pod_name, stop_grace=5)

    result = await fleet.apply(template(logistic_model_dir), 2, ready_timeout=LOAD_TIMEOUT)
    assert result.ok, result.message
    old = {s.pod_name for s in result.pods}
    assert len(old) == 2 and all(s.ready for s in result.pods)

    # A new model: replaced one at a time, never without a ready pod.
    watch = ReadyWatch(fleet)
    result = await fleet.apply(template(forest_model_dir), 2, ready_timeout=LOAD_TIMEOUT)
    assert await watch.stop() >= 1
    assert result.ok, result.message
    assert len(result.pods) == 2 and all(s.ready for s in result.pods)
    assert set(models_of(runtime).values()) == {str(forest_model_dir)}
    assert not old & set(models_of(runtime)), "every old pod is replaced"
    assert sorted(plane.drained) == sorted((pod, True) for pod in old), "drained while alive"

    # A model that cannot load: the failed pod goes, the running ones stay.
    current = models_of(runtime)
    result = await fleet.apply(template(broken_model_dir), 2, ready_timeout=LOAD_TIMEOUT)
    assert not result.ok
    assert result.reason == "LoadFailed" and "broken on purpose" in result.message
    assert models_of(runtime) == current
    assert all(s.ready for s in fleet.pods(SERVICE))

    # Scale down: the newest pod goes first, drained before it stops; 0 stops everything.
    plane.drained.clear()
    newest = list(current)[-1]
    result = await fleet.apply(template(forest_model_dir), 1)
    assert result.ok and [s.pod_name for s in result.pods] == [list(current)[0]]
    assert plane.drained == [(newest, True)]
    last_pid = result.pods[0].pid
    result = await fleet.apply(template(forest_model_dir), 0)
    assert result.ok and result.pods == [] and fleet.pods(SERVICE) == []
    assert not alive(last_pid)


async def test_adopt_keeps_names_apply_waits_for_them_and_remove_stops_all(
    runtime, recorder, logistic_model_dir, broken_model_dir
):
    plane = ControlPlane(runtime)
    fleet = Fleet(runtime, drain=plane.drain, new_pod_name=plane.new_pod_name, stop_grace=5)

    # A known pod whose model no longer loads: apply waits for it, then drops it and says why.
    await fleet.adopt(SERVICE, template(broken_model_dir), ["ms-fleet001-kept1"])
    assert [s.pod_name for s in fleet.pods(SERVICE)] == ["ms-fleet001-kept1"]
    result = await fleet.apply(template(broken_model_dir), 1, ready_timeout=LOAD_TIMEOUT)
    assert not result.ok and result.reason == "LoadFailed"
    assert fleet.pods(SERVICE) == [] == result.pods

    # remove drains and stops every pod, loading or not.
    kept = ["ms-fleet001-kept1", "ms-fleet001-kept2"]
    await fleet.adopt(SERVICE, template(logistic_model_dir), kept)
    started = [await recorder.until(lambda s, p=pod: s.pod_name == p and s.pid is not None, 10) for pod in kept]
    await fleet.remove(SERVICE)
    assert fleet.pods(SERVICE) == []
    assert sorted(pod for pod, _ in plane.drained) == kept
    assert not any(alive(s.pid) for s in started)

    with pytest.raises(ValueError, match="replicas"):
        await fleet.apply(template(logistic_model_dir), -1)
    with pytest.raises(ValueError, match="service_id"):
        await fleet.adopt("svc-other", template(logistic_model_dir), ["ms-other-00001"])


def test_template_refuses_bad_values():
    with pytest.raises(ValueError, match="memory_mb"):
        ReplicaTemplate(service_id=SERVICE, model_uri="/m", cpu_millicores=500, memory_mb=-5)
