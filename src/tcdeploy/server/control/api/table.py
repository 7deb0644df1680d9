"""The action table: which handler answers each action of each API service, with its request model.

Explicit, so a reader sees every action in one place and nothing depends on import order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tcdeploy.protocol.actions import CATALOGUE, Model
from tcdeploy.protocol.apis import TIONE, WEDATA

from . import calls, groups, instance_types, logs, monitoring, pods, registry, services, tokens
from .context import Context

Handler = Callable[[Context, Any], Awaitable[dict]]

_HANDLERS: dict[str, dict[str, Handler]] = {
    WEDATA: {
        "CreateMLModelServices": services.create_services,
        "UpdateMLModelService": services.update_service,
        "DeleteMLModelService": services.delete_service,
        "GetMLModelService": services.get_service,
        "ListMLModelServiceGroups": services.list_groups,
        "ModelServiceInterfaceCallTest": calls.call_test,
        "CreateModelServicePodUrl": pods.create_pod_url,
        "RebuildModelServicePod": pods.rebuild_pod,
        "ListMLServiceLogs": logs.list_logs,
        "ListModelVersions": registry.list_model_versions,
    },
    TIONE: {
        "DescribeInferenceSpecs": instance_types.describe_inference_specs,
        "CreateModelServiceGroup": groups.create_group,
        "DescribeModelServiceGroup": groups.describe_group,
        "DescribeModelServiceGroups": groups.describe_groups,
        "ModifyServiceGroupWeights": groups.modify_weights,
        "DeleteModelServiceGroup": groups.delete_group,
        "DescribeModelServiceCallInfo": tokens.describe_call_info,
        "CreateModelServiceAuthToken": tokens.create_auth_token,
        "DeleteModelServiceAuthToken": tokens.delete_auth_token,
        "ModifyModelServiceAuthorization": tokens.modify_authorization,
        "DescribeModelServiceMonitoring": monitoring.describe_monitoring,
    },
}

ACTIONS: dict[tuple[str, str], tuple[type[Model], Handler]] = {
    (service, name): (CATALOGUE[service][name], handler)
    for service, handlers in _HANDLERS.items()
    for name, handler in handlers.items()
}


def unanswered() -> list[tuple[str, str]]:
    """Actions the catalogue types but no handler answers yet (they answer InvalidAction)."""
    return sorted({(service, name) for service, models in CATALOGUE.items() for name in models} - ACTIONS.keys())
