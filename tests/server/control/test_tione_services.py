"""TI-ONE's model-service actions through the SDK's `TioneClient`: the lifecycle, and one state
behind both APIs (a service made through wedata is seen and changed through tione, and back).
Every reply parses with the SDK's response model, members and types."""

from __future__ import annotations

import pytest

from tcdeploy.protocol.states import ServiceStatus, tione_word, wedata_word
from tcdeploy.protocol.tione import MODELS, members
from tests.support.cloudapi import call, common_client, error_of, wait_for_status
from tests.support.tione import NORMAL, STOPPED, sdk_call, wait_for

SIZE = "TI.S.SMALL.POST"


def create_body(name: str, model_dir, **more) -> dict:
    return {
        "ServiceGroupName": name,
        "InstanceType": SIZE,
        "Replicas": 1,
        "ModelInfo": {"ModelName": name, "ModelSource": "COS", "CosPathInfo": {"Paths": [str(model_dir)]}},
        **more,
    }


@pytest.fixture(scope="module")
def lifecycle(tcdeploy_server, logistic_model_dir):
    """A group made through TI-ONE's CreateModelService, running, with a second version (no replicas)."""
    server = tcdeploy_server
    created = sdk_call(
        server,
        "CreateModelService",
        create_body(
            "tione-life",
            logistic_model_dir,
            ServiceDescription="made by TioneClient",
            ServiceLimit={"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 500},
            ScheduledAction={"ScheduleStop": False},
            HealthProbe={"LivenessProbe": {"ProbeAction": {"HTTPGet": {"Path": "/ping", "Port": 8501}}}},
            RollingUpdate={"MaxSurge": {"Type": "NUM", "Value": 1}},
            Env=[{"Name": "A", "Value": "1"}],
        ),
    ).Service
    running = wait_for(server, created.ServiceId, {NORMAL})
    second = sdk_call(
        server,
        "CreateModelService",
        {**create_body("ignored", logistic_model_dir, Replicas=0), "ServiceGroupId": created.ServiceGroupId},
    ).Service
    yield created, running, second
    call(common_client(server, "tione"), "DeleteModelServiceGroup", {"ServiceGroupId": created.ServiceGroupId})


def test_create_replies_the_service_as_the_sdk_models_it(lifecycle):
    created, running, second = lifecycle
    assert created.Status == tione_word(ServiceStatus.CREATING)
    assert running.Status == NORMAL and running.Version == "1" and running.Weight == 100
    info = running.ServiceInfo
    assert info.InstanceType == SIZE and info.Resources.Cpu == 1000 and info.Resources.Memory == 2048
    assert info.Status.ReadyReplicas == 1 and len(info.PodInfos) == 1 and info.PodInfos[0].Name.startswith("ms-")
    assert info.PodInfos[0].ContainerInfos[0].Status.Ready is True
    assert info.ServiceLimit.InstanceRpsLimit == 500 and info.HealthProbe.LivenessProbe.ProbeAction.HTTPGet.Port == 8501
    assert info.RollingUpdate.MaxSurge.Value == 1 and info.Env[0].Name == "A"
    assert info.ModelInfo.ModelSource == "COS" and info.ModelInfo.CosPathInfo.Paths
    assert running.ServiceDescription == "made by TioneClient"
    assert running.CreateTime.endswith("Z") and running.CreateFailedReason == "CREATE_SUCCEED"
    # A second version of the group: its own id, the next version, no traffic yet.
    assert second.ServiceGroupId == created.ServiceGroupId and second.ServiceId.endswith("-2")
    assert second.Version == "2" and second.Weight == 0 and second.LatestVersion == "2"


def test_every_member_we_know_is_filled(lifecycle):
    _, running, _ = lifecycle
    unknown_here = {
        "Uin", "SubUin", "AppId", "SubUinName", "IngressName", "CreatedBy", "BillingInfo", "ResourceGroupName",
        "ResourceGroupSWType", "ArchiveStatus", "MonitorSource", "SchedulingPolicy", "ExternalResourceGroups",
        "Changer", "ChangerName", "ResourceGroupId", "CreateSource", "ResourceSupplyAttribute",
    }  # fmt: skip
    empty = {m.name for m in members("Service") if getattr(running, m.name) is None}
    assert empty <= unknown_here, empty - unknown_here
    # In ServiceInfo: what the request did not set, and what has no meaning on one machine.
    not_set = {"ImageInfo", "LogConfig", "HorizontalPodAutoscaler", "HybridBillingPrepaidReplicas", "ScaleStrategy",
               "ModelTurboEnable", "VolumeMount", "Command", "ServiceEIP", "TerminationGracePeriodSeconds",
               "PreStopCommand", "GrpcEnable", "SchedulingStrategy", "InferTemplateId"}  # fmt: skip
    meaningless = {"OldReplicas", "OldHybridBillingPrepaidReplicas", "Pods", "InferCodeInfo", "NodeCount"}
    empty = {m.name for m in members("ServiceInfo") if getattr(running.ServiceInfo, m.name) is None}
    assert empty <= not_set | meaningless, empty - not_set - meaningless


def test_every_group_member_we_know_is_filled(tcdeploy_server, lifecycle):
    created, _, _ = lifecycle
    group = sdk_call(tcdeploy_server, "DescribeModelServiceGroup", {"ServiceGroupId": created.ServiceGroupId})
    unknown_here = {"CreatedBy", "Uin", "SubUin", "AppId", "BillingInfo", "CreateSource", "MonitorSource",
                    "SubUinName", "GatewayLogConfig", "GatewayConfig", "Changer", "ChangerName", "SmartRouter"}  # fmt: skip
    empty = {m.name for m in members("ServiceGroup") if getattr(group.ServiceGroup, m.name) is None}
    assert empty <= unknown_here, empty - unknown_here


def test_groups_list_and_describe(tcdeploy_server, lifecycle):
    created, _, second = lifecycle
    group = sdk_call(tcdeploy_server, "DescribeModelServiceGroup", {"ServiceGroupId": created.ServiceGroupId})
    assert group.ServiceGroup.ServiceCount == 2 and group.ServiceGroup.ServiceGroupName == "tione-life"
    listed = sdk_call(
        tcdeploy_server,
        "DescribeModelServiceGroups",
        {"Filters": [{"Name": "ServiceId", "Values": [second.ServiceId]}], "Limit": 10},
    )
    assert listed.TotalCount == 1 and [s.ServiceId for s in listed.ServiceGroups[0].Services] == [
        created.ServiceId,
        second.ServiceId,
    ]
    fuzzy = {"Filters": [{"Name": "ServiceGroupName", "Values": ["ione-li"], "Fuzzy": True}]}
    assert sdk_call(tcdeploy_server, "DescribeModelServiceGroups", fuzzy).TotalCount == 1


def test_weights_call_info_events_and_logs(tcdeploy_server, lifecycle):
    created, _, second = lifecycle
    group_id = created.ServiceGroupId
    weights = [{"ServiceId": created.ServiceId, "Weight": 70}, {"ServiceId": second.ServiceId, "Weight": 30}]
    group = sdk_call(tcdeploy_server, "ModifyServiceGroupWeights", {"ServiceGroupId": group_id, "Weights": weights})
    assert [s.Weight for s in group.ServiceGroup.Services] == [70, 30]
    info = sdk_call(tcdeploy_server, "DescribeModelServiceCallInfo", {"ServiceGroupId": group_id})
    assert info.ServiceCallInfoV2.InternetEndpoint.endswith(f"/groups/{group_id}/predict")
    assert info.ServiceCallInfoV2.EnableLimit is True
    events = sdk_call(tcdeploy_server, "DescribeEvents", {"Service": "INFER", "ServiceId": created.ServiceId})
    assert events.TotalCount >= 1 and all(e.Count >= 1 and e.LastTimestamp for e in events.Events)
    kinds = {e.ResourceKind for e in events.Events}
    only = {"Service": "INFER", "ServiceId": created.ServiceId, "Filters": [{"Name": "ResourceKind", "Values": [next(iter(kinds))]}]}  # fmt: skip
    assert {e.ResourceKind for e in sdk_call(tcdeploy_server, "DescribeEvents", only).Events} == {next(iter(kinds))}
    logs = sdk_call(tcdeploy_server, "DescribeLogs", {"Service": "INFER", "ServiceId": created.ServiceId, "Limit": 5})
    assert logs.Content and all(
        line.PodName.startswith("ms-") and line.Timestamp.endswith("Z") for line in logs.Content
    )
    assert len(logs.Content) <= 5


def test_modify_scales_stops_and_resumes(tcdeploy_server, lifecycle):
    _, _, second = lifecycle
    changed = sdk_call(
        tcdeploy_server,
        "ModifyModelService",
        {
            "ServiceId": second.ServiceId,
            "ServiceDescription": "second",
            # Kept under MANUAL (they act under AUTO with ScaleStrategy CRON).
            "CronScaleJobs": [{"Name": "night", "Schedule": "0 22 * * *", "TargetReplicas": 1}],
        },
    ).Service
    assert changed.ServiceDescription == "second" and changed.ServiceInfo.CronScaleJobs[0].Name == "night"
    sdk_call(tcdeploy_server, "ModifyModelService", {"ServiceId": second.ServiceId, "ServiceAction": "STOP"})
    assert wait_for(tcdeploy_server, second.ServiceId, {STOPPED}).ServiceInfo.Replicas == 0


def test_refusals_name_the_member(tcdeploy_server, logistic_model_dir):
    tione = common_client(tcdeploy_server, "tione")
    err = error_of(tione, "CreateModelService", {**create_body("bad-one", logistic_model_dir), "Typo": 1})
    assert err.code == "UnknownParameter" and "Typo" in err.message
    err = error_of(tione, "CreateModelService", create_body("bad-one", logistic_model_dir, InstanceType="TI.NOPE"))
    assert err.code == "InvalidParameterValue" and "InstanceType" in err.message
    no_model = {k: v for k, v in create_body("bad-one", logistic_model_dir).items() if k != "ModelInfo"}
    assert error_of(tione, "CreateModelService", no_model).code == "MissingParameter"
    err = error_of(tione, "CreateModelService", create_body("bad-one", logistic_model_dir, Replicas=99))
    assert err.code == "InvalidParameterValue" and "Replicas" in err.message
    assert error_of(tione, "DescribeEvents", {"Service": "TRAIN"}).code == "InvalidParameterValue"
    assert error_of(tione, "DescribeModelService", {"ServiceId": "nope"}).code == "ResourceNotFound"
    assert (
        call(tione, "DescribeModelServiceGroups", {"Filters": [{"Name": "ServiceGroupName", "Values": ["bad-one"]}]})[
            "TotalCount"
        ]
        == 0
    )


def test_every_request_member_of_the_sdk_is_accepted():
    """The request models are the SDK's: each of its members, nothing else."""
    for action in ("CreateModelService", "ModifyModelService", "DescribeLogs", "DescribeEvents"):
        assert set(MODELS[action].model_fields) == {m.name for m in members(f"{action}Request")}


# ---- one state behind both APIs ---------------------------------------------------------------


def test_made_through_wedata_seen_and_changed_through_tione(tcdeploy_server, logistic_model_dir):
    wedata = common_client(tcdeploy_server, "wedata")
    body = {
        "WorkspaceId": "default",
        "ServiceName": "cross-w2t",
        "ServiceDescription": "from wedata",
        "Services": [{"InstanceType": SIZE, "Replicas": 0, "MlModelInfo": {"ModelPath": str(logistic_model_dir)}}],
    }
    made = call(wedata, "CreateMLModelServices", body)["Data"]
    service_id = made["ServiceId"] if "ServiceId" in made else made["Services"][0]["ServiceId"]
    try:
        seen = sdk_call(tcdeploy_server, "DescribeModelService", {"ServiceId": service_id}).Service
        assert seen.ServiceGroupName == "cross-w2t" and seen.ServiceInfo.InstanceType == SIZE
        assert seen.ServiceInfo.ModelInfo.CosPathInfo.Paths == [str(logistic_model_dir)]
        sdk_call(
            tcdeploy_server,
            "ModifyModelService",
            {
                "ServiceId": service_id,
                "ServiceDescription": "changed by tione",
                "ServiceLimit": {"InstanceRpsLimit": 7},
            },
        )
        detail = call(wedata, "GetMLModelService", {"WorkspaceId": "default", "ServiceId": service_id})["Data"]
        assert detail["Description"] == "changed by tione" and detail["ServiceLimit"]["InstanceRpsLimit"] == 7
    finally:
        sdk_call(tcdeploy_server, "DeleteModelService", {"ServiceId": service_id})
    assert error_of(wedata, "GetMLModelService", {"ServiceId": service_id}).code == "ResourceNotFound"


def test_made_through_tione_seen_and_changed_through_wedata(tcdeploy_server, logistic_model_dir):
    made = sdk_call(tcdeploy_server, "CreateModelService", create_body("cross-t2w", logistic_model_dir)).Service
    wedata = common_client(tcdeploy_server, "wedata")
    try:
        running = wait_for_status(wedata, made.ServiceId, {wedata_word(ServiceStatus.RUNNING)})
        assert running["ServiceGroupId"] == made.ServiceGroupId and running["InstanceType"] == SIZE
        call(wedata, "UpdateMLModelService", {"ServiceId": made.ServiceId, "ServiceAction": "SCALE", "Replicas": 0})
        assert wait_for(tcdeploy_server, made.ServiceId, {NORMAL, STOPPED}).ServiceInfo.Replicas == 0
        listed = call(wedata, "ListMLModelServiceGroups", {"WorkspaceId": "default", "PageSize": 100})["Data"]
        assert made.ServiceGroupId in [g["ServiceGroupId"] for g in listed["Rows"]]
    finally:
        call(wedata, "DeleteMLModelService", {"ServiceId": made.ServiceId})
    err = error_of(common_client(tcdeploy_server, "tione"), "DescribeModelService", {"ServiceId": made.ServiceId})
    assert err.code == "ResourceNotFound"


def test_logs_come_newest_first_and_page_on(tcdeploy_server, lifecycle):
    created, _, _ = lifecycle
    ask = {"Service": "INFER", "ServiceId": created.ServiceId, "Limit": 2}
    first = sdk_call(tcdeploy_server, "DescribeLogs", ask)
    assert len(first.Content) == 2 and first.Content[0].Timestamp >= first.Content[1].Timestamp
    assert first.Context  # more lines follow
    second = sdk_call(tcdeploy_server, "DescribeLogs", {**ask, "Context": first.Context})
    assert second.Content and second.Content[0].Timestamp <= first.Content[1].Timestamp
    assert not {line.Id for line in first.Content} & {line.Id for line in second.Content}
    oldest = sdk_call(tcdeploy_server, "DescribeLogs", {**ask, "Order": "ASC", "Limit": 1}).Content[0]
    assert oldest.Timestamp <= second.Content[-1].Timestamp
    keyed = {**ask, "Limit": 100, "Filters": [{"Name": "Key", "Values": ["model loaded"]}]}
    assert all("model loaded" in line.Message for line in sdk_call(tcdeploy_server, "DescribeLogs", keyed).Content)
