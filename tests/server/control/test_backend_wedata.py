"""The backend rules behind wedata's group, token, event and monitor actions, in-process (the same
temporary world as test_backend_rules: a store, a real route table, a fake fleet)."""

from __future__ import annotations

import pytest

from tcdeploy.protocol.errors import InvalidParameterValue, ResourceNotFound
from tcdeploy.protocol.states import EventType
from tcdeploy.server.control.backend import pod_prefix
from tcdeploy.server.gateway.auth import authorized

from . import test_backend_rules as rules
from .test_backend_rules import WS, run

world = rules.world  # the same fixture: a temporary store, routes and a fake fleet


def test_a_name_is_taken_by_a_service_or_by_a_group(world):
    async def go():
        await world.create("iris")
        world.backend.create_group(WS, "empty")
        assert world.backend.name_taken(WS, "iris") and world.backend.name_taken(WS, "empty")
        assert not world.backend.name_taken(WS, "free")
        assert not world.backend.name_taken("another-workspace", "iris")

    run(go())


def test_group_settings_merge_and_survive_other_changes(world):
    async def go():
        service = await world.create("iris")
        world.backend.update_group_settings(WS, service.group_id, {"Description": "first"})
        world.backend.update_group_settings(WS, service.group_id, {"Other": 1})
        world.backend.set_auth(WS, service.group_id, True)
        assert world.store.group(service.group_id).spec == {"Description": "first", "Other": 1}

    run(go())


def test_the_inference_table_switch_reaches_every_service_of_the_group(world):
    async def go():
        first = await world.create("v1")
        second = await world.create("v2", group_ref=first.group_id)
        world.backend.set_monitor_config(WS, first.group_id, {"InferenceTableCollectionEnabled": True})
        route = world.routes.group(first.group_id)
        assert route.versions[first.id].inference_table and route.versions[second.id].inference_table
        config = world.store.group(first.group_id).spec["MonitorConfig"]
        assert config["InferenceTableCollectionEnabled"] is True and config["UpdateTime"] >= config["CreateTime"]
        world.backend.set_monitor_config(WS, first.group_id, {"InferenceTableCollectionEnabled": False})
        assert not world.routes.group(first.group_id).versions[second.id].inference_table
        # A setting without the switch leaves the services as they are.
        world.backend.set_monitor_config(WS, first.group_id, {"CatalogPath": "DataLakeCatalog"})
        assert world.store.group(first.group_id).spec["MonitorConfig"]["CatalogPath"] == "DataLakeCatalog"

    run(go())


def test_a_renamed_token_keeps_its_value_and_a_reset_one_refuses_the_old_value(world):
    async def go():
        service = await world.create("iris")
        group_id = service.group_id
        token = world.backend.create_token(WS, group_id, "ci", "for CI")
        renamed = world.backend.update_token(WS, group_id, token.value, name="ci-2", description="")
        assert renamed.value == token.value and renamed.record.name == "ci-2" and renamed.record.description == ""
        reset = world.backend.update_token(WS, group_id, token.value, reset=True, limits=[{"Strategy": "QPS"}])
        assert reset.value != token.value and reset.record.name == "ci-2"
        hashes = world.routes.group(group_id).token_hashes
        assert authorized(reset.value, hashes) and not authorized(token.value, hashes)
        assert world.store.group(group_id).spec["AuthTokenLimits"] == {reset.record.id: [{"Strategy": "QPS"}]}
        with pytest.raises(ResourceNotFound, match="auth token"):
            world.backend.update_token(WS, group_id, token.value, name="again")

    run(go())


def test_weights_refused_under_the_member_the_request_used(world):
    async def go():
        service = await world.create("iris")
        with pytest.raises(InvalidParameterValue, match=r"WeightEntries\.0\.ServiceId"):
            world.backend.set_weights(WS, service.group_id, [("nope", 1)], field="WeightEntries")

    run(go())


def test_events_name_the_pod_they_concern_or_else_the_deployment(world):
    async def go():
        service = await world.create("iris")
        pod = f"{pod_prefix(service.id)}6d49b68644-j8jjs"
        world.reconciler.record(service.id, EventType.WARNING, "OOMKilled", f"{pod}: over its memory")
        events = world.backend.service_events(WS, service.id)
        kinds = {(e.resource_kind, e.resource_name) for e in events}
        assert ("Pod", pod) in kinds and ("Deployment", pod_prefix(service.id).rstrip("-")) in kinds
        other = await world.create("other")
        assert {e.service.id for e in world.backend.service_events(WS)} == {service.id, other.id}

    run(go())


def test_replica_usage_is_a_share_of_the_instance_type(world):
    async def go():
        service = await world.create("iris")  # TI.S.SMALL.POST: 1 CPU, 2048 MB
        pod = world.runtime.states(service.id)[0].pod_name
        world.runtime.usage = lambda name: (50.0, 1024 * 2**20) if name == pod else None
        [usage] = world.backend.replica_usage(WS, service.id)
        assert (usage.pod_name, usage.cpu_percent, usage.memory_percent) == (pod, 50.0, 50.0)

    run(go())
