"""The backend's rules, in-process: a temporary store, a real route table and gateway, and a fake
fleet whose replicas are records, not processes. Each test runs in milliseconds."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tcdeploy.protocol.errors import (
    FailedOperation,
    InvalidParameterValue,
    LimitExceeded,
    MissingParameter,
    ResourceInUse,
    ResourceNotFound,
)
from tcdeploy.protocol.states import TRANSITIONS, GroupStatus, PodPhase, ServiceStatus
from tcdeploy.server.control.backend import (
    Backend,
    ModelRef,
    ModelRegistry,
    Reconciler,
    ServerSecret,
)
from tcdeploy.server.gateway import Gateway, RouteTable
from tcdeploy.server.gateway.auth import authorized
from tcdeploy.server.runtime import FleetResult, ReplicaState
from tcdeploy.server.store import Store

WS = "ws-1"
SPEC = {"InstanceType": "TI.S.SMALL.POST", "Replicas": 1}


class FakeRuntime:
    """Replica states kept as records; a replica is 'ready' the moment the fleet makes it."""

    def __init__(self) -> None:
        self.pods: dict[str, ReplicaState] = {}
        self.rebuilt: list[str] = []

    def states(self, service_id: str | None = None) -> list[ReplicaState]:
        return [p for p in self.pods.values() if service_id is None or p.service_id == service_id]

    def state(self, pod_name: str) -> ReplicaState | None:
        return self.pods.get(pod_name)

    async def rebuild(self, pod_name: str) -> None:
        self.rebuilt.append(pod_name)


class FakeFleet:
    """Runs `replicas` ready pods of a template, unless its model URI says it is broken."""

    def __init__(self, runtime: FakeRuntime) -> None:
        self.runtime = runtime
        self.applied: list[tuple[str, str, int]] = []
        self.templates: list = []

    async def apply(self, template, replicas: int) -> FleetResult:
        self.applied.append((template.service_id, template.model_uri, replicas))
        self.templates.append(template)
        if "broken" in template.model_uri:
            return FleetResult(ok=False, reason="LoadFailed", message="the model cannot load")
        await self.remove(template.service_id)
        for i in range(replicas):
            name = f"ms-{template.service_id}-{i}"
            self.runtime.pods[name] = ReplicaState(
                name, template.service_id, phase=PodPhase.RUNNING, ready=True, address=f"/tmp/{name}.sock"
            )
        return FleetResult(ok=True)

    async def remove(self, service_id: str) -> None:
        for pod in self.runtime.states(service_id):
            del self.runtime.pods[pod.pod_name]


def model_dir(root: Path, name: str) -> str:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "MLmodel").write_text("flavors: {}\n")
    return str(path)


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store(root / "state.db")
        self.routes = RouteTable()
        self.runtime = FakeRuntime()
        self.fleet = FakeFleet(self.runtime)
        self.reconciler = Reconciler(self.store, self.runtime, self.fleet, self.routes, "sqlite:///unused.db")
        self.gateway = Gateway(self.routes, data_dir=root)
        self.backend = Backend(
            store=self.store,
            runtime=self.runtime,
            reconciler=self.reconciler,
            registry=ModelRegistry("sqlite:///unused.db"),
            gateway=self.gateway,
            secret=ServerSecret(b"s" * 32),
            data_dir=root,
        )
        self.good = ModelRef(path=model_dir(root, "good"))
        self.other = ModelRef(path=model_dir(root, "other"))
        self.broken = ModelRef(path=model_dir(root, "broken"))

    async def create(self, name: str, model: ModelRef | None = None, **kwargs):
        service = await self.backend.create_service(WS, name, spec=dict(SPEC), model=model or self.good, **kwargs)
        await self.reconciler.idle()
        return self.store.service(service.id)

    def status(self, service) -> ServiceStatus:
        return self.store.service(service.id).status


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.store.close()


def run(coro):
    return asyncio.run(coro)


def test_a_created_service_runs_with_all_the_traffic_of_its_new_group(world):
    async def go():
        service = await world.create("iris")
        assert service.status is ServiceStatus.RUNNING and service.weight == 100
        group = world.store.group(service.group_id)
        assert group.name == "iris"
        assert world.routes.group(group.id).versions[service.id].status is ServiceStatus.RUNNING

    run(go())


def test_each_lifecycle_step_is_one_line_of_the_servers_log(world, caplog):
    async def go():
        service = await world.create("iris")
        await world.backend.remove_service(WS, service.id)
        return service.id

    with caplog.at_level(logging.INFO, logger="tcdeploy.server"):
        service_id = run(go())
    lines = [r.getMessage() for r in caplog.records if r.name == "tcdeploy.server"]
    assert [line.split(": ", 1)[1].split(",")[0] for line in lines] == [
        f"created in group {service_id.rsplit('-', 1)[0]}",
        "Creating -> Running",
        "Running -> Deleting",
        "deleted",
    ]
    assert all(line.startswith(f"iris ({service_id}): ") for line in lines)


def test_a_third_service_in_a_group_is_refused_and_nothing_is_written(world):
    async def go():
        first = await world.create("v1")
        await world.create("v2", group_ref=first.group_id)
        with pytest.raises(LimitExceeded, match="already holds 2 services"):
            await world.create("v3", group_ref=first.group_id)
        assert [s.name for s in world.store.services(first.group_id)] == ["v1", "v2"]
        assert world.store.service_by_name(WS, "v3") is None

    run(go())


def test_the_second_service_of_a_group_starts_with_no_traffic(world):
    async def go():
        first = await world.create("v1")
        second = await world.create("v2", group_ref=first.group_id)
        assert (first.weight, second.weight) == (100, 0)

    run(go())


def test_a_taken_name_is_refused_for_a_service_and_for_a_new_group(world):
    async def go():
        await world.create("iris")
        with pytest.raises(ResourceInUse, match="ServiceName"):
            await world.create("iris")
        world.backend.create_group(WS, "empty")
        with pytest.raises(ResourceInUse, match="service group named 'empty'"):
            await world.create("empty")
        assert len(world.store.groups(WS)) == 2

    run(go())


def test_a_model_that_does_not_exist_is_refused_before_anything_is_written(world):
    async def go():
        with pytest.raises(InvalidParameterValue, match="Services.0.MlModelInfo.ModelPath"):
            await world.create("ghost", ModelRef(path=str(world.root / "nowhere")))
        with pytest.raises(MissingParameter, match="Services.0.MlModelInfo"):
            await world.create("nothing", ModelRef())
        assert world.store.groups(WS) == [] and world.store.services() == []

    run(go())


def test_an_unknown_instance_type_is_refused_naming_the_field(world):
    async def go():
        with pytest.raises(InvalidParameterValue, match=r"Services\.0\.InstanceType: unknown instance type"):
            await world.backend.create_service(
                WS, "big", spec={"InstanceType": "HUGE", "Replicas": 1}, model=world.good
            )
        assert world.store.services() == []

    run(go())


def test_an_instance_type_is_read_in_any_case_and_kept_as_the_server_spells_it(world):
    async def go():
        service = await world.backend.create_service(
            WS, "small", spec={"InstanceType": "ti.s.Small.post", "Replicas": 1}, model=world.good
        )
        assert world.store.service(service.id).spec["InstanceType"] == "TI.S.SMALL.POST"

    run(go())


def test_a_model_that_cannot_load_fails_the_create_with_the_reason(world):
    async def go():
        service = await world.create("bad", world.broken)
        assert service.status is ServiceStatus.CREATE_FAILED
        assert "LoadFailed" in service.reason and "cannot load" in service.reason
        with pytest.raises(FailedOperation, match="failed to create"):
            await world.backend.update_service(WS, service.id, changes={"Replicas": 2})

    run(go())


def test_an_update_whose_model_fails_to_load_keeps_the_previous_spec(world):
    async def go():
        service = await world.create("iris")
        before = service.spec
        await world.backend.update_service(WS, service.id, changes={"MlModelInfo": {}}, model=world.broken)
        await world.reconciler.idle()
        after = world.store.service(service.id)
        assert after.spec == before
        assert after.status is ServiceStatus.RUNNING and "last update failed" in after.reason
        reasons = [e.reason for e in world.store.events(service.id)]
        assert "UpdateFailed" in reasons

    run(go())


def test_an_update_of_the_model_rolls_the_replicas_and_a_description_does_not(world):
    async def go():
        service = await world.create("iris")
        await world.backend.update_service(WS, service.id, model=world.other, changes={"MlModelInfo": {}})
        await world.reconciler.idle()
        assert world.store.service(service.id).spec["ModelUri"] == world.other.path
        rolls = len(world.fleet.applied)
        await world.backend.update_service(WS, service.id, changes={"ServiceDescription": "hello"})
        await world.reconciler.idle()
        assert len(world.fleet.applied) == rolls
        assert world.store.service(service.id).spec["ServiceDescription"] == "hello"

    run(go())


def test_stop_resume_and_scale(world):
    async def go():
        service = await world.create("iris")
        await world.backend.update_service(WS, service.id, action="STOP")
        await world.reconciler.idle()
        assert world.status(service) is ServiceStatus.STOPPED and world.runtime.states(service.id) == []
        await world.backend.update_service(WS, service.id, action="RESUME")
        await world.reconciler.idle()
        assert world.status(service) is ServiceStatus.RUNNING and len(world.runtime.states(service.id)) == 1
        await world.backend.update_service(WS, service.id, action="SCALE", replicas=3)
        await world.reconciler.idle()
        assert len(world.runtime.states(service.id)) == 3
        with pytest.raises(MissingParameter, match="Replicas"):
            await world.backend.update_service(WS, service.id, action="SCALE")
        with pytest.raises(InvalidParameterValue, match="ServiceAction"):
            await world.backend.update_service(WS, service.id, action="EXPLODE")

    run(go())


def test_deleting_a_service_gives_the_survivor_all_the_traffic(world):
    async def go():
        first = await world.create("v1")
        second = await world.create("v2", group_ref=first.group_id)
        await world.backend.remove_service(WS, first.id)
        assert world.store.service(first.id) is None
        assert world.store.service(second.id).weight == 100
        assert first.id not in world.routes.group(first.group_id).versions

    run(go())


def test_weights_name_the_bad_entry_and_refuse_all_zero_without_writing(world):
    async def go():
        first = await world.create("v1")
        second = await world.create("v2", group_ref=first.group_id)
        world.backend.set_weights(WS, first.group_id, [(first.id, 30), ("v2", 70)])
        assert [s.weight for s in world.store.services(first.group_id)] == [30, 70]
        with pytest.raises(InvalidParameterValue, match=r"Weights\.1\.ServiceId"):
            world.backend.set_weights(WS, first.group_id, [(first.id, 50), ("nope", 50)])
        with pytest.raises(InvalidParameterValue, match="weight above 0"):
            world.backend.set_weights(WS, first.group_id, [(first.id, 0), (second.id, 0)])
        assert [s.weight for s in world.store.services(first.group_id)] == [30, 70]

    run(go())


def test_enabling_auth_creates_a_token_the_gateway_accepts(world):
    async def go():
        service = await world.create("iris", authorization=True)
        tokens = world.backend.tokens(service.group_id)
        assert len(tokens) == 1
        route = world.routes.group(service.group_id)
        assert route.auth_enabled and authorized(tokens[0].value, route.token_hashes)
        assert not authorized("wrong", route.token_hashes)
        # Switching it off and on again keeps the one token: auth on never means "no token".
        world.backend.set_auth(WS, service.group_id, False)
        world.backend.set_auth(WS, service.group_id, True)
        assert [t.value for t in world.backend.tokens(service.group_id)] == [tokens[0].value]

    run(go())


def test_a_token_is_deleted_by_its_value_only(world):
    async def go():
        group = world.backend.create_group(WS, "g")
        made = world.backend.create_token(WS, group.id, "ci")
        with pytest.raises(ResourceNotFound):
            world.backend.delete_token(WS, group.id, "not-it")
        world.backend.delete_token(WS, group.id, made.value)
        assert world.backend.tokens(group.id) == []
        assert world.store.tokens(group.id) == []

    run(go())


def test_another_workspaces_resources_do_not_exist(world):
    async def go():
        service = await world.create("iris")
        with pytest.raises(ResourceNotFound):
            world.backend.service("ws-2", service.id)
        with pytest.raises(ResourceNotFound):
            world.backend.group("ws-2", "iris")
        assert world.backend.service(WS, "iris").id == service.id  # by name, in its own workspace

    run(go())


def test_a_pod_of_another_service_is_not_found(world):
    async def go():
        a = await world.create("a")
        b = await world.create("b")
        pod_of_b = world.runtime.states(b.id)[0].pod_name
        with pytest.raises(ResourceNotFound, match="pod"):
            await world.backend.rebuild_pod(WS, a.id, pod_of_b)
        await world.backend.rebuild_pod(WS, b.id, pod_of_b)
        assert world.runtime.rebuilt == [pod_of_b]

    run(go())


def test_deleting_a_group_deletes_its_services_and_tokens(world):
    async def go():
        service = await world.create("iris", authorization=True)
        await world.backend.delete_group(WS, service.group_id)
        assert world.store.group(service.group_id) is None and world.store.services() == []
        assert world.store.tokens(service.group_id) == []
        assert world.routes.group(service.group_id) is None

    run(go())


def test_a_restarted_backend_brings_back_what_the_store_holds(world):
    async def go():
        running = await world.create("iris")
        stopped = await world.create("idle")
        await world.backend.update_service(WS, stopped.id, action="STOP")
        await world.reconciler.idle()
        world.runtime.pods.clear()  # the server died; its replicas with it
        fresh = World(world.root)
        await fresh.reconciler.restore()
        await fresh.reconciler.idle()
        assert fresh.status(running) is ServiceStatus.RUNNING
        assert len(fresh.runtime.states(running.id)) == 1
        assert fresh.status(stopped) is ServiceStatus.STOPPED
        assert fresh.runtime.states(stopped.id) == []
        fresh.store.close()

    run(go())


def test_group_status_sums_up_its_services():
    S = ServiceStatus
    assert GroupStatus.of([]) is GroupStatus.STOPPED
    assert GroupStatus.of([S.RUNNING, S.RUNNING]) is GroupStatus.NORMAL
    assert GroupStatus.of([S.RUNNING, S.UPDATING]) is GroupStatus.UPDATING
    assert GroupStatus.of([S.RUNNING, S.ABNORMAL]) is GroupStatus.ABNORMAL
    assert GroupStatus.of([S.STOPPED]) is S.STOPPED


def test_deleting_is_the_end_and_a_failed_create_only_retries_or_goes():
    S = ServiceStatus
    assert TRANSITIONS[S.DELETING] == frozenset()
    assert not S.DELETING.can_become(S.RUNNING)
    assert S.CREATE_FAILED.can_become(S.CREATING) and not S.CREATE_FAILED.can_become(S.RUNNING)
    assert all(status.can_become(S.DELETING) for status in S if status is not S.DELETING)
    assert {s for s in S if s.serves} == {S.RUNNING, S.UPDATING, S.ABNORMAL}


def test_env_reaches_the_replicas_and_rolls_them_and_reserved_names_are_refused(world):
    async def go():
        service = await world.backend.create_service(
            WS, "envy", spec={**SPEC, "Env": [{"Name": "MODEL_MODE", "Value": "fast"}]}, model=world.good
        )
        await world.reconciler.idle()
        assert world.fleet.templates[-1].env["MODEL_MODE"] == "fast"
        assert world.fleet.templates[-1].env["MLFLOW_TRACKING_URI"]  # the server's own stays
        rolls = len(world.fleet.applied)
        await world.backend.update_service(WS, service.id, changes={"Env": [{"Name": "MODEL_MODE", "Value": "slow"}]})
        await world.reconciler.idle()
        assert len(world.fleet.applied) == rolls + 1 and world.fleet.templates[-1].env["MODEL_MODE"] == "slow"
        for name in ("LD_PRELOAD", "PYTHONPATH", "TCDEPLOY_SECRET_KEY", "MLFLOW_TRACKING_URI", "1BAD", "A=B"):
            with pytest.raises(InvalidParameterValue, match=r"Env\.0\.Name"):
                await world.backend.update_service(WS, service.id, changes={"Env": [{"Name": name, "Value": "x"}]})
        with pytest.raises(InvalidParameterValue, match=r"Services\.0\.Env\.0\.Name"):
            await world.backend.create_service(
                WS, "bad-env", spec={**SPEC, "Env": [{"Name": "PATH", "Value": "/tmp"}]}, model=world.good
            )
        assert world.store.service(service.id).spec["Env"] == [{"Name": "MODEL_MODE", "Value": "slow"}]
        assert world.store.service_by_name(WS, "bad-env") is None

    run(go())


def test_resources_size_the_replicas_in_place_of_the_instance_type(world):
    async def go():
        service = await world.create("sized")
        assert world.fleet.templates[-1].memory_mb == 2048  # TI.S.SMALL.POST
        await world.backend.update_service(WS, service.id, changes={"Resources": {"Cpu": 500, "Memory": 768}})
        await world.reconciler.idle()
        assert (world.fleet.templates[-1].cpu_millicores, world.fleet.templates[-1].memory_mb) == (500, 768)

    run(go())


def test_replicas_out_of_range_are_refused_whatever_api_asked(world):
    async def go():
        service = await world.create("counted")
        for bad in (-1, 17, True, "2"):
            with pytest.raises(InvalidParameterValue, match="Replicas"):
                await world.backend.update_service(WS, service.id, action="SCALE", replicas=bad)
            with pytest.raises(InvalidParameterValue, match="Replicas"):
                await world.backend.update_service(WS, service.id, changes={"Replicas": bad})
        assert world.store.service(service.id).replicas == 1

    run(go())


def test_resources_out_of_range_are_refused_whatever_api_asked(world):
    async def go():
        service = await world.create("small")
        for bad in ({"Cpu": -1}, {"Cpu": 10**6}, {"Memory": 1}, {"Memory": "lots"}):
            with pytest.raises(InvalidParameterValue, match="Resources"):
                await world.backend.update_service(WS, service.id, changes={"Resources": bad})
        assert "Resources" not in world.store.service(service.id).spec

    run(go())
