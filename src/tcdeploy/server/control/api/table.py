"""The action table: which handler answers each action of each API service, with its request model.

Explicit, so a reader sees every action in one place and nothing depends on import order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tcdeploy.protocol import actions as a
from tcdeploy.protocol.actions import CATALOGUE, Model
from tcdeploy.protocol.apis import TIONE, WEDATA

from . import calls, groups, instance_types, logs, monitoring, pods, registry, services, tokens
from .context import Context

Handler = Callable[[Context, Any], Awaitable[dict]]

_HANDLERS: dict[str, dict[type[Model], Handler]] = {
    WEDATA: {
        a.CreateMLModelServices: services.create_services,
        a.UpdateMLModelService: services.update_service,
        a.DeleteMLModelService: services.delete_service,
        a.GetMLModelService: services.get_service,
        a.ListMLModelServiceGroups: services.list_groups,
        a.ModelServiceInterfaceCallTest: calls.call_test,
        a.CreateModelServicePodUrl: pods.create_pod_url,
        a.RebuildModelServicePod: pods.rebuild_pod,
        a.ListMLServiceLogs: logs.list_logs,
        a.ListModelVersions: registry.list_model_versions,
    },
    TIONE: {
        a.DescribeInferenceSpecs: instance_types.describe_inference_specs,
        a.CreateModelServiceGroup: groups.create_group,
        a.DescribeModelServiceGroup: groups.describe_group,
        a.DescribeModelServiceGroups: groups.describe_groups,
        a.ModifyServiceGroupWeights: groups.modify_weights,
        a.DeleteModelServiceGroup: groups.delete_group,
        a.DescribeModelServiceCallInfo: tokens.describe_call_info,
        a.CreateModelServiceAuthToken: tokens.create_auth_token,
        a.DeleteModelServiceAuthToken: tokens.delete_auth_token,
        a.ModifyModelServiceAuthorization: tokens.modify_authorization,
        a.DescribeModelServiceMonitoring: monitoring.describe_monitoring,
    },
}

ACTIONS: dict[tuple[str, str], tuple[type[Model], Handler]] = {
    (service, model.__name__): (model, handler)
    for service, handlers in _HANDLERS.items()
    for model, handler in handlers.items()
}

# Every action the catalogue types has a handler, and no handler answers an untyped action.
_typed = {(service, name) for service, models in CATALOGUE.items() for name in models}
if _typed != ACTIONS.keys():
    raise RuntimeError(f"action table and catalogue differ: {sorted(_typed ^ ACTIONS.keys())}")
