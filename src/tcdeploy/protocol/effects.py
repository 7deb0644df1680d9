"""What the server does with the wedata members it accepts, where that is less than the real API does.

One home for two lists docs/wire.md shows (its action table is generated from them and from the
schema by `tcdeploy.server.wiredoc`, and a test fails when the committed table differs):

- `NO_EFFECT[action][member]`: accepted, stored and shown back, but acting on nothing here, with
  why. A member of a struct is named path-wise as the request nests it (`Services.ChargeType`,
  `ServiceLimit.InstanceReqLimit`). The list only shrinks: a member is made to act, or stays here.
- `REPLY_EXTENSIONS[struct][member]`: members of our own a reply carries beside the schema's
  (never in place of one), with what they are.

Request extensions and narrowed members are read from `tcdeploy.protocol.wedata`; TI-ONE's own list
is `tcdeploy.protocol.tione.NO_EFFECT`.
"""

from __future__ import annotations

from .schema import wedata

# Why a member acts on nothing here: one wording for both APIs (tione.py reads these too).
NO_BILLING = "there is no billing on one machine"
NO_CLS = "logs are kept per pod on this machine; there is no CLS to ship them to"
BY_PATH = "the model is found by `ModelPath` or `Name`/`Version`"
OWN_RUNTIME = "replicas run the server's own MLflow model server, not an image of yours"
OWN_PLACEMENT = "replicas run as processes of this machine: no resource groups, regions or networks"
OWN_ROLLING = "updates roll one replica at a time, always"
SEED = "kept and shown back, as the seed plugin sends them"
STATE = "the server decides the state; `ServiceAction` changes it"
ONE_KIND = "every service here is an online inference service"
NO_OWNERS = "there are no permissions or owners here"

# The settings of a service, wherever a request carries them (the top of CreateMLModelService and
# UpdateMLModelService, each of CreateMLModelServices' `Services`); each action gets those its
# schema has.
_SERVICE_SETTINGS: dict[str, str] = {
    "ChargeType": NO_BILLING,
    "LogConfig": NO_CLS,
    "ModelSource": BY_PATH,
    "MlModelInfo.Id": BY_PATH,
    "ImageInfo": OWN_RUNTIME,
    "Command": OWN_RUNTIME,
    "ServicePort": OWN_RUNTIME,
    "ModelHotUpdateEnable": OWN_RUNTIME,
    "MaxRetryTimes": OWN_RUNTIME,
    "InstancePerReplicas": "a replica is one process on one machine",
    "RollingUpdate": OWN_ROLLING,
    "ResourceGroupId": OWN_PLACEMENT,
    "SchedulingStrategy": OWN_PLACEMENT,
    "ServiceEIPInfo": OWN_PLACEMENT,
    "WeDataRegion": OWN_PLACEMENT,
    "CosRegion": OWN_PLACEMENT,
    "InferenceTableCosBucket": "the inference table is written in the server's data dir",
    "CatalogPath": SEED,
    "SchemaPath": SEED,
    "PayloadPath": SEED,
    "Status": STATE,
}


def _settings(owner: str, prefix: str = "") -> dict[str, str]:
    """The service settings `owner` (an action or a struct) has, named path-wise under `prefix`."""
    schema = wedata()
    members = {m.name: m for m in (schema.actions[owner].input if owner in schema.actions else schema.struct(owner))}
    found = {}
    for path, why in _SERVICE_SETTINGS.items():
        head, _, rest = path.partition(".")
        member = members.get(head)
        if member is None:
            continue
        if rest and not (member.struct and any(m.name == rest for m in schema.struct(member.struct))):
            continue
        found[f"{prefix}{path}"] = why
    return found


NO_EFFECT: dict[str, dict[str, str]] = {
    "CreateMLModelServices": {
        **_settings("CreateServiceInfos", "Services."),
        **_settings("CreateMLModelServices"),
        "ServiceAction": "a created service starts; `START` is what the seed plugin sends",
        "NewVersion": "with `ServiceGroupId` a service is always a new version of that group",
    },
    "CreateMLModelService": {
        **_settings("CreateMLModelService"),
        "ServiceAction": "a created service starts",
    },
    "UpdateMLModelService": {
        **_settings("UpdateMLModelService"),
        "ServiceAction": "with it, every other member but `Replicas` is ignored: the action alone decides",
    },
    "UpdateModelServiceAuthToken": {"AuthToken.Limits": "kept; the group's tokens are not rate-limited apart"},
    "UpdateServiceGroupMonitorConfig": {
        "ClsDeliveryEnabled": NO_CLS,
        "LogConfig": NO_CLS,
        "CatalogPath": "the inference table is written in the server's data dir",
        "SchemaPath": "the inference table is written in the server's data dir",
        "PayloadPath": "the inference table is written in the server's data dir",
    },
    "GetModelServiceMonitorData": {
        "ServiceGroupId": "`ServiceId` names the service",
    },
    "ListModelServiceEvents": {"JobCategory": ONE_KIND},
    "ListMLServiceLogs": {"JobCategory": ONE_KIND},
    "ListModels": {"FetchOption": NO_OWNERS},
    "GetModel": {"FetchOption": NO_OWNERS},
    "SearchModels": {"Owner": NO_OWNERS},
    "GetBillingSpecs": {"TaskType": "every spec here is an inference spec, whatever the task"},
}

REPLY_EXTENSIONS: dict[str, dict[str, str]] = {
    "MLModelService": {
        "BatchConfig": "adaptive batching on the replica, as the request set it (an extension)",
        "RequestTimeoutSeconds": "how long the gateway waits for a replica's answer, then a 504 (an extension)",
    },
    "HorizontalPodAutoscaler": {"HpaMetrics": "the metrics the autoscaler follows, as the request set them (TI-ONE's)"},
}
