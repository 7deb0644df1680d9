"""The scaling loop in-process, on the backend rules' world (a store, a real route table and
gateway, a fake fleet), with a clock the test moves: cron jobs fire once and survive a restart
of the loop, the latest missed run is applied at start, a scheduled stop stops, an idle
MinReplicas-0 service goes to zero and a wake brings it back, each with its event."""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tcdeploy.protocol.states import ServiceStatus
from tcdeploy.server.control.backend import ScalingControl, ScalingSettings
from tests.server.control.test_backend_rules import WS, FakeRuntime, World

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, text: str) -> None:
        self.now = datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()

    def __call__(self) -> float:
        return self.now


def in_loop(test):
    """Run an async test body in a fresh event loop (the world's reconciler needs one)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


class UsageRuntime(FakeRuntime):
    def usage(self, pod_name: str):
        return None


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    w.runtime.__class__ = UsageRuntime
    yield w
    w.store.close()


def control(world: World, clock: Clock, idle_after: float = 300.0) -> ScalingControl:
    settings = ScalingSettings(interval=1.0, idle_after=idle_after, timezone="Asia/Shanghai")
    scaling = ScalingControl(world.store, world.runtime, world.gateway, world.reconciler, settings, clock=clock)
    scaling._started = clock()
    return scaling


async def make(world: World, **spec):
    created = await world.backend.create_service(
        WS, "svc", spec={"InstanceType": "TI.S.SMALL.POST", "Replicas": 1, **spec}, model=world.good
    )
    await world.reconciler.idle()
    return created


def reasons(world: World, service) -> list[str]:
    return [e.reason for e in world.store.events(service.id)]


CRON = {
    "ScaleMode": "AUTO",
    "ScaleStrategy": "CRON",
    "CronScaleJobs": [
        {"Name": "day", "Schedule": "0 9 * * *", "TargetReplicas": 3},
        {"Name": "night", "Schedule": "0 22 * * *", "TargetReplicas": 1},
    ],
}


@in_loop
async def test_a_cron_job_fires_at_its_time_in_the_servers_timezone_and_once(world, monkeypatch):
    clock = Clock("2026-03-02T08:59:00")
    monkeypatch.setattr("time.time", clock)  # the backend stamps the job's start with time.time
    service = await make(world, **CRON)
    scaling = control(world, clock)
    scaling.tick()
    assert world.store.service(service.id).replicas == 1
    clock.now += 90  # 09:00:30 in Shanghai
    scaling.tick()
    await world.reconciler.idle()
    assert world.store.service(service.id).replicas == 3
    assert len(world.runtime.states(service.id)) == 3
    cron = [e for e in world.store.events(service.id) if e.reason == "CronScaled"]
    assert len(cron) == 1 and "day" in cron[0].message and "Asia/Shanghai" in cron[0].message
    world.store.update_service(service.id, spec={**world.store.service(service.id).spec, "Replicas": 2})
    scaling.tick()
    assert world.store.service(service.id).replicas == 2  # not fired twice


@in_loop
async def test_after_a_restart_the_latest_missed_run_is_applied_once(world, monkeypatch):
    clock = Clock("2026-03-02T08:00:00")
    monkeypatch.setattr("time.time", clock)
    service = await make(world, **CRON)
    control(world, clock).tick()
    clock.now += 3 * 86400 + 3 * 3600  # the server was down three days; it is 11:00
    restarted = control(world, clock)
    restarted.tick()
    await world.reconciler.idle()
    cron = [e for e in world.store.events(service.id) if e.reason == "CronScaled"]
    assert world.store.service(service.id).replicas == 3
    assert len(cron) == 1 and "2026-03-05 09:00" in cron[0].message
    restarted.tick()
    assert len([e for e in world.store.events(service.id) if e.reason == "CronScaled"]) == 1


async def stopping_at_half_past(world, monkeypatch):
    """A service set to stop at 08:30 (Shanghai), the clock at 08:00, and the loop."""
    clock = Clock("2026-03-02T08:00:00")
    monkeypatch.setattr("time.time", clock)
    stop = {"ScheduleStop": True, "ScheduleStopTime": "2026-03-02T08:30:00+08:00"}
    service = await make(world, ScheduledAction=stop)
    return clock, service, control(world, clock)


async def act(world, service, action: str) -> None:
    await world.backend.update_service(WS, service.id, action=action)
    await world.reconciler.idle()


@in_loop
async def test_a_scheduled_stop_stops_the_service_with_an_event(world, monkeypatch):
    clock, service, scaling = await stopping_at_half_past(world, monkeypatch)
    scaling.tick()
    assert world.status(service) is ServiceStatus.RUNNING
    clock.now += 31 * 60
    scaling.tick()
    await world.reconciler.idle()
    assert world.status(service) is ServiceStatus.STOPPED
    assert "ScheduledStop" in reasons(world, service)
    assert not world.runtime.states(service.id)
    await act(world, service, "RESUME")
    scaling.tick()
    await world.reconciler.idle()
    assert world.status(service) is ServiceStatus.RUNNING  # stopped once, not again


@in_loop
async def test_a_stop_time_passing_while_stopped_does_not_stop_a_later_resume(world, monkeypatch):
    clock, service, scaling = await stopping_at_half_past(world, monkeypatch)
    await act(world, service, "STOP")
    clock.now += 31 * 60
    scaling.tick()
    await act(world, service, "RESUME")
    scaling.tick()
    await world.reconciler.idle()
    assert world.status(service) is ServiceStatus.RUNNING
    assert "ScheduledStop" not in reasons(world, service)


@in_loop
async def test_an_idle_min_zero_service_goes_to_zero_and_a_request_wakes_it(world, monkeypatch):
    clock = Clock("2026-03-02T08:00:00")
    monkeypatch.setattr("time.time", clock)
    hpa = {"MinReplicas": 0, "MaxReplicas": 2, "HpaMetrics": [{"Name": "concurrency-util", "Value": 4}]}
    service = await make(world, ScaleMode="AUTO", HorizontalPodAutoscaler=hpa)
    scaling = control(world, clock, idle_after=60)
    scaling.tick()
    assert world.store.service(service.id).replicas == 1
    clock.now += 61
    scaling.tick()
    await world.reconciler.idle()
    assert world.store.service(service.id).replicas == 0
    assert world.status(service) is ServiceStatus.RUNNING  # still Normal to the API
    assert world.routes.service(service.id)[1].wakes
    scaling.wake(service.id)
    await world.reconciler.idle()
    assert world.store.service(service.id).replicas == 1
    assert {"ScaledToZero", "Woken"} <= set(reasons(world, service))
