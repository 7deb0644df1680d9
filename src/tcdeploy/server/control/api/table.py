"""The action table: which handler answers each action of each API service, with its request model.

Explicit, so a reader sees every action in one place and nothing depends on import order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tcdeploy.protocol.actions import CATALOGUE, Model
from tcdeploy.protocol.apis import TIONE, WEDATA

from . import (
    auth,
    billing,
    calls,
    chat,
    events,
    groups,
    groups_wedata,
    instance_types,
    logs,
    monitor,
    monitoring,
    pods,
    registry,
    services,
    tione_services,
    tokens,
)
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
        "GetModelVersion": registry.get_model_version,
        "UpdateModelVersionAliases": registry.update_aliases,
        "ListModels": registry.list_models,
        "GetModel": registry.get_model,
        "SearchModels": registry.search_models,
        "CreateMLModelService": groups_wedata.create_service,
        "CheckDuplicateServiceName": groups_wedata.check_duplicate_name,
        "GetMLModelServiceGroup": groups_wedata.get_group,
        "DeleteMLModelServiceGroup": groups_wedata.delete_group,
        "UpdateModelServiceGroup": groups_wedata.update_group,
        "UpdateServiceGroupWeights": groups_wedata.update_weights,
        "CreateModelServiceAuthToken": auth.create_token,
        "DeleteModelServiceAuthToken": auth.delete_token,
        "UpdateModelServiceAuthToken": auth.update_token,
        "UpdateModelServiceAuthorization": auth.update_authorization,
        "GetModelServiceCallInfo": auth.call_info,
        "ListModelServiceEvents": events.list_events,
        "GetModelServiceMonitorData": monitor.monitor_data,
        "GetServiceGroupMonitorConfig": monitor.get_monitor_config,
        "UpdateServiceGroupMonitorConfig": monitor.update_monitor_config,
        "GetBillingSpecs": billing.billing_specs,
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
        "CreateModelService": tione_services.create_service,
        "ModifyModelService": tione_services.modify_service,
        "DescribeModelService": tione_services.describe_service,
        "DeleteModelService": tione_services.delete_service,
        "ModifyModelServiceAuthToken": tokens.modify_auth_token,
        "DescribeEvents": tione_services.describe_events,
        "DescribeLogs": tione_services.describe_logs,
        "DescribeBillingSpecs": instance_types.describe_billing_specs,
        "ChatCompletion": chat.chat_completion,
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
