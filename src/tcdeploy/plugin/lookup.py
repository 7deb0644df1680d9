"""Names to ids: deployments (services ``svc-…``) and endpoints (groups ``grp-…``).

Callers may pass an id or a unique name. Lookups go through ``ListMLModelServiceGroups`` with
a filter, and the result is matched exactly here (a server may match filters loosely).
"""

from __future__ import annotations

import re
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from tcdeploy.plugin.cloudapi import CloudApi, CloudApiError

SERVICE_ID = re.compile(r"^svc-[A-Za-z0-9]+$")
GROUP_ID = re.compile(r"^grp-[A-Za-z0-9]+$")
PAGE_SIZE = 100

Group = dict[str, Any]
Service = dict[str, Any]


def not_found(kind: str, ref: str, where: str = "") -> MlflowException:
    return MlflowException(f"{kind} {ref!r} does not exist{where}", error_code=RESOURCE_DOES_NOT_EXIST)


class Directory:
    def __init__(self, api: CloudApi) -> None:
        self._api = api

    def groups(self, **filters: str) -> list[Group]:
        """Every group (with its services) matching ``Name=value`` filters, oldest first."""
        body: dict[str, Any] = {"Filters": [{"Name": k, "Values": [v]} for k, v in filters.items()], "Limit": PAGE_SIZE}
        found: list[Group] = []
        while True:
            data = self._api.wedata("ListMLModelServiceGroups", {**body, "Offset": len(found)})
            page = data.get("Groups") or []
            found.extend(page)
            if not page or len(found) >= int(data.get("TotalCount") or 0):
                return found

    # ---- groups (endpoints) -------------------------------------------------------------------

    def find_group(self, ref: str) -> Group | None:
        if GROUP_ID.match(ref):
            for group in self.groups(ServiceGroupId=ref):
                if group.get("ServiceGroupId") == ref:
                    return group
        matches = [g for g in self.groups(ServiceGroupName=ref) if g.get("ServiceGroupName") == ref]
        if len(matches) > 1:
            ids = ", ".join(g["ServiceGroupId"] for g in matches)
            raise MlflowException(
                f"endpoint name {ref!r} is ambiguous ({ids}); pass the id", error_code=INVALID_PARAMETER_VALUE
            )
        return matches[0] if matches else None

    def group(self, ref: str) -> Group:
        _require_text(ref, "endpoint")
        group = self.find_group(ref)
        if group is None:
            raise not_found("endpoint", ref)
        return group

    # ---- services (deployments) ---------------------------------------------------------------

    def find_service(self, ref: str, group_id: str | None = None) -> tuple[Group, Service] | None:
        """The service ``ref`` (id or unique name) and its group; ``group_id`` narrows the search."""
        matches = []
        if SERVICE_ID.match(ref):
            matches = self._services_in(self.groups(ServiceId=ref), "ServiceId", ref)
        if not matches:
            matches = self._services_in(self.groups(ServiceName=ref), "ServiceName", ref)
        if group_id:
            matches = [(g, s) for g, s in matches if g.get("ServiceGroupId") == group_id]
        if len(matches) > 1:
            ids = ", ".join(s["ServiceId"] for _, s in matches)
            raise MlflowException(
                f"deployment name {ref!r} is ambiguous ({ids}); pass the id", error_code=INVALID_PARAMETER_VALUE
            )
        return matches[0] if matches else None

    def service(self, ref: str, endpoint: str | None = None) -> tuple[Group, Service]:
        _require_text(ref, "deployment name")
        group_id = self.group(endpoint)["ServiceGroupId"] if endpoint else None
        found = self.find_service(ref, group_id)
        if found is None:
            raise not_found("deployment", ref, f" in endpoint {endpoint!r}" if endpoint else "")
        return found

    def service_id(self, ref: str) -> str:
        """An id as given (no lookup), or the id of the service with that unique name."""
        _require_text(ref, "service_id")
        return ref if SERVICE_ID.match(ref) else self.service(ref)[1]["ServiceId"]

    def detail(self, service_id: str) -> dict[str, Any]:
        """``GetMLModelService``: the full ``ServiceDetail`` (pods, events)."""
        return self._api.wedata("GetMLModelService", {"ServiceId": service_id})

    @staticmethod
    def _services_in(groups: list[Group], field: str, value: str) -> list[tuple[Group, Service]]:
        return [(g, s) for g in groups for s in g.get("Services") or [] if s.get(field) == value]


def _require_text(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise MlflowException(f"{what} is required (an id or a unique name)", error_code=INVALID_PARAMETER_VALUE)


def is_not_found(exc: Exception) -> bool:
    return isinstance(exc, CloudApiError) and exc.is_not_found()
