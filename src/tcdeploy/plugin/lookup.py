"""Names to ids: deployments (services) and endpoints (service groups).

Callers may pass an id or a unique name. Whether a reference is a group or a service is asked of
the API, never read from its shape: the real ids are a bare UUID (group) and ``<group uuid>-<n>``
(service), and a name may look like either. Lookups page through ``ListMLModelServiceGroups``
(every group with its services) and match ids, then names, exactly here: the real API documents
no filter names, so none are sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from tcdeploy.plugin.cloudapi import CloudApi, CloudApiError

PAGE_SIZE = 100  # the most the real API's PageSize takes
MAX_PAGES = 1000  # a server that never says "last page" must not keep us here forever

Group = dict[str, Any]
Service = dict[str, Any]


def not_found(kind: str, ref: str, where: str = "") -> MlflowException:
    return MlflowException(f"{kind} {ref!r} does not exist{where}", error_code=RESOURCE_DOES_NOT_EXIST)


def _ambiguous(kind: str, ref: str, ids: list[str]) -> MlflowException:
    return MlflowException(
        f"{kind} name {ref!r} is ambiguous ({', '.join(ids)}); pass the id", error_code=INVALID_PARAMETER_VALUE
    )


@dataclass
class Matches:
    """What one reference names among the groups and services listed: by id, else by name."""

    groups: list[Group] = field(default_factory=list)
    services: list[tuple[Group, Service]] = field(default_factory=list)

    def group(self, ref: str) -> Group | None:
        if len(self.groups) > 1:
            raise _ambiguous("endpoint", ref, [g["ServiceGroupId"] for g in self.groups])
        return self.groups[0] if self.groups else None

    def service(self, ref: str) -> tuple[Group, Service] | None:
        if len(self.services) > 1:
            raise _ambiguous("deployment", ref, [s["ServiceId"] for _, s in self.services])
        return self.services[0] if self.services else None


def match(groups: list[Group], ref: str, group_id: str | None = None) -> Matches:
    """The groups and services ``ref`` names (``group_id`` narrows the services); an id match
    wins over a name match, so a name that happens to equal an id never shadows it."""
    pairs = [(g, s) for g in groups for s in g.get("Services") or [] if isinstance(s, dict)]
    if group_id:
        pairs = [(g, s) for g, s in pairs if g.get("ServiceGroupId") == group_id]
    return Matches(
        groups=[g for g in groups if g.get("ServiceGroupId") == ref]
        or [g for g in groups if g.get("ServiceGroupName") == ref],
        services=[(g, s) for g, s in pairs if s.get("ServiceId") == ref]
        or [(g, s) for g, s in pairs if s.get("ServiceName") == ref],
    )


class Directory:
    def __init__(self, api: CloudApi) -> None:
        self._api = api

    def groups(self) -> list[Group]:
        """Every group (with its services), through every page of ``ListMLModelServiceGroups``.

        The page size is the server's (it may answer fewer rows than asked): paging ends at
        ``TotalPageNumber``, at ``TotalCount`` rows, or at an empty page, whichever comes first.
        """
        found: list[Group] = []
        for number in range(1, MAX_PAGES + 1):
            data = self._api.wedata("ListMLModelServiceGroups", {"PageNumber": number, "PageSize": PAGE_SIZE})
            rows = [g for g in data.get("Rows") or [] if isinstance(g, dict)]
            found.extend(rows)
            total_pages, total = data.get("TotalPageNumber"), data.get("TotalCount")
            if not rows or (total_pages is not None and number >= int(total_pages)):
                break
            if total is not None and len(found) >= int(total):
                break
        return found

    def lookup(self, ref: str, group_id: str | None = None) -> Matches:
        return match(self.groups(), ref, group_id)

    # ---- groups (endpoints) -------------------------------------------------------------------

    def find_group(self, ref: str) -> Group | None:
        return self.lookup(ref).group(ref)

    def group(self, ref: str) -> Group:
        _require_text(ref, "endpoint")
        group = self.find_group(ref)
        if group is None:
            raise not_found("endpoint", ref)
        return group

    def group_by_id(self, group_id: str) -> Group:
        """``GetMLModelServiceGroup``: the group (with its services and tokens) by the id the API gave."""
        return self._api.wedata("GetMLModelServiceGroup", {"ServiceGroupId": group_id})

    # ---- services (deployments) ---------------------------------------------------------------

    def find_service(self, ref: str, group_id: str | None = None) -> tuple[Group, Service] | None:
        """The service ``ref`` (id or unique name) and its group; ``group_id`` narrows the search."""
        return self.lookup(ref, group_id).service(ref)

    def service(self, ref: str, endpoint: str | None = None) -> tuple[Group, Service]:
        _require_text(ref, "deployment name")
        group_id = self.group(endpoint)["ServiceGroupId"] if endpoint else None
        found = self.find_service(ref, group_id)
        if found is None:
            raise not_found("deployment", ref, f" in endpoint {endpoint!r}" if endpoint else "")
        return found

    def service_id(self, ref: str) -> str:
        """The id of the service ``ref`` names (its id or its unique name)."""
        _require_text(ref, "service_id")
        return self.service(ref)[1]["ServiceId"]

    def detail(self, service_id: str) -> dict[str, Any]:
        """``GetMLModelService``: the full ``MLModelService`` (``PodInfos``, ``WorkloadStatus``)."""
        return self._api.wedata("GetMLModelService", {"ServiceId": service_id})


def _require_text(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise MlflowException(f"{what} is required (an id or a unique name)", error_code=INVALID_PARAMETER_VALUE)


def is_not_found(exc: Exception) -> bool:
    return isinstance(exc, CloudApiError) and exc.is_not_found()
