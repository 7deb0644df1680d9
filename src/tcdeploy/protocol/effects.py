"""What the server does with the members it accepts, where that is less than the real API does.

One home for two lists docs/wire.md shows (its action table is generated from them and from the
schema by `tcdeploy.protocol.wiredoc`, and a test fails when the committed table differs):

- `NO_EFFECT[action][member]`: accepted, stored and shown back, but acting on nothing here, with
  why. A member of a struct is named `Struct.Member` path-wise as the request nests it
  (`Services.ChargeType`). The list only shrinks: a member is made to act, or stays named here.
- `REPLY_EXTENSIONS[struct][member]`: members of our own a reply carries beside the schema's
  (never in place of one), with what they are.

Request extensions and narrowed members are read from `tcdeploy.protocol.wedata`.
"""

from __future__ import annotations

_NO_BILLING = "there is no billing on one machine"
_NO_AUTOSCALING = "replicas are fixed at `Replicas`; autoscaling is not built yet"
_NO_SCHEDULE = "the scheduled stop is not built yet"
_ONLY_RPS = "only the per-replica RPS limit acts"
_NO_CLS = "logs are kept per pod on this machine; there is no CLS to ship them to"
_BY_PATH = "the model is found by `ModelPath` or `Name`/`Version`"
_OWN_SOCKETS = "replicas listen on their own sockets"
_SEED = "kept and shown back, as the seed plugin sends them"
_STATE = "the server decides the state; `ServiceAction` changes it"

_SERVICE_SETTINGS: dict[str, str] = {
    "ChargeType": _NO_BILLING,
    "ScaleMode": _NO_AUTOSCALING,
    "ScheduledAction": _NO_SCHEDULE,
    "ServiceLimit.EnableInstanceReqLimit": _ONLY_RPS,
    "ServiceLimit.InstanceReqLimit": _ONLY_RPS,
    "LogConfig": _NO_CLS,
    "ModelSource": _BY_PATH,
    "MlModelInfo.Id": _BY_PATH,
    "ServicePort": _OWN_SOCKETS,
}

NO_EFFECT: dict[str, dict[str, str]] = {
    "CreateMLModelServices": {
        # Per service, as `Services[]` nests them; the group's log and model settings at the top.
        **{f"Services.{m}": why for m, why in _SERVICE_SETTINGS.items() if m not in ("ModelSource", "LogConfig")},
        "ModelSource": _BY_PATH,
        "LogConfig": _NO_CLS,
        "CatalogPath": _SEED,
        "SchemaPath": _SEED,
        "PayloadPath": _SEED,
        "Status": _STATE,
        "ServiceAction": "a created service starts; `START` is what the seed plugin sends",
    },
    "CreateMLModelService": dict(_SERVICE_SETTINGS),
    "UpdateMLModelService": {
        **_SERVICE_SETTINGS,
        "Status": _STATE,
        "ServiceAction": "with it, every other member but `Replicas` is ignored: the action alone decides",
    },
}

REPLY_EXTENSIONS: dict[str, dict[str, str]] = {
    "MLModelService": {"BatchConfig": "adaptive batching on the replica, as the request set it (an extension)"},
}
