"""The estate the conformance suite runs against: on the session's server, in a workspace of its
own, one group with a running service of a small sklearn model, a registered model version and a
token; and throwaway resources for the calls that destroy or change what they name."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tcdeploy.protocol.states import ServiceStatus, wedata_word
from tests.support.cloudapi import common_client
from tests.support.models import register_model

from .schema_requests import Ids

WS = "conformance"
CATALOG, SCHEMA, MODEL = "conformance", "estate", "iris"
INSTANCE = "TI.S.MICRO.POST"
RUNNING = {wedata_word(ServiceStatus.RUNNING), str(ServiceStatus.RUNNING)}  # the second: today's word
SETTLED = RUNNING | {wedata_word(s) for s in (ServiceStatus.CREATE_FAILED, ServiceStatus.ABNORMAL)}


def send(client: CommonClient, action: str, params: dict) -> dict:
    """The reply's `Response` without RequestId, an error reply included (as a dict, not raised)."""
    try:
        reply = client.call_json(action, params)["Response"]
    except TencentCloudSDKException as exc:
        return {"Error": {"Code": exc.code, "Message": exc.message}}
    reply.pop("RequestId", None)
    return reply


def data_of(client: CommonClient, action: str, params: dict) -> Any:
    reply = send(client, action, params)
    if "Error" in reply:
        raise AssertionError(f"{action} refused the estate's own call: {reply['Error']}")
    return reply.get("Data")


def created_ids(data: Any) -> tuple[str | None, str | None]:
    """(group id, service id) from a create reply: a group with `Services[]` (the real shape) or a
    service (the shape this server had before)."""
    if not isinstance(data, dict):
        return None, None
    services = data.get("Services") or []
    if services and isinstance(services[0], dict):
        return data.get("ServiceGroupId"), services[0].get("ServiceId")
    return data.get("ServiceGroupId"), data.get("ServiceId")


def pod_names(service: dict) -> list[str]:
    pods = service.get("PodInfos") or service.get("Pods") or []
    return [p.get("Name") or p.get("PodName") for p in pods]


@dataclass
class Estate:
    client: CommonClient
    tione: CommonClient
    ids: Ids
    made_groups: list[str] = field(default_factory=list)
    _names: itertools.count = field(default_factory=itertools.count)

    def name(self) -> str:
        return f"conf-{next(self._names)}-{int(time.time() * 1000) % 100_000}"

    def service(self) -> dict:
        return data_of(self.client, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": self.ids.service})

    def groups(self) -> dict:
        return data_of(self.client, "ListMLModelServiceGroups", {"WorkspaceId": WS})

    def settle(self, timeout: float = 120) -> dict:
        """Wait until the estate's service runs again (after a rebuild), and note its pod's name."""
        deadline = time.monotonic() + timeout
        while True:
            detail = self.service()
            names = pod_names(detail)
            if detail["Status"] in RUNNING and names:
                self.ids.pod = names[0]
                return detail
            if time.monotonic() > deadline:
                raise AssertionError(f"the estate's service is {detail['Status']}: {detail.get('Reason')}")
            time.sleep(0.3)

    def throwaway(self) -> tuple[str, str]:
        """A group with one service of no replicas (nothing to start), deleted at the end."""
        request = {
            "WorkspaceId": WS,
            "ServiceName": self.name(),
            "Services": [{"InstanceType": INSTANCE, "Replicas": 0, "MlModelInfo": {"ModelPath": self.ids.model_path}}],
        }
        group, service = created_ids(data_of(self.client, "CreateMLModelServices", request))
        self.made_groups.append(group)
        return group, service

    def forget(self, data: Any) -> None:
        """Delete, at the end, the group a create call made."""
        group, _ = created_ids(data)
        if group and group != self.ids.group:
            self.made_groups.append(group)

    def token_values(self, group: str) -> list[str]:
        reply = send(self.tione, "DescribeModelServiceCallInfo", {"TiProjectId": WS, "ServiceGroupId": group})
        info = reply.get("ServiceCallInfoV2") or {}
        values = [t.get("Base", {}).get("Value") for t in info.get("AuthTokens") or []]
        return [v for v in values if v] or ([info["AuthToken"]] if info.get("AuthToken") else [])

    def new_token(self, group: str) -> str:
        """A token of `group`, made by the wedata action if the server has it, else by TI-ONE's."""
        before = set(self.token_values(group))
        params = {"WorkspaceId": WS, "ServiceGroupId": group, "Name": self.name()}
        if "Error" in send(self.client, "CreateModelServiceAuthToken", params):
            tione = {"TiProjectId": WS, "ServiceGroupId": group, "Name": params["Name"]}
            send(self.tione, "CreateModelServiceAuthToken", tione)
        fresh = [v for v in self.token_values(group) if v not in before]
        return fresh[0] if fresh else "no-token-could-be-made"

    def cleanup(self) -> None:
        for group in self.made_groups:
            for action in ("DeleteMLModelServiceGroup", "DeleteModelServiceGroup"):
                client = self.client if action.startswith("DeleteML") else self.tione
                space = {"WorkspaceId": WS} if client is self.client else {"TiProjectId": WS}
                if "Error" not in send(client, action, {**space, "ServiceGroupId": group}):
                    break


@pytest.fixture(scope="package")  # its replica and groups go when the package is done
def estate(tcdeploy_server, logistic_model_dir):
    client = common_client(tcdeploy_server, "wedata")
    tione = common_client(tcdeploy_server, "tione")
    version = int(register_model(tcdeploy_server.tracking_uri, f"{CATALOG}.{SCHEMA}.{MODEL}", workspace=WS))
    ids = Ids(WS, "", "", "", "", CATALOG, SCHEMA, MODEL, version, str(logistic_model_dir))
    found = Estate(client, tione, ids)
    ids.names = found.name
    model = {"Name": MODEL, "Version": str(version), "ModelPath": ids.model_path}
    request = {
        "WorkspaceId": WS,
        "ServiceName": "conformance-estate",
        "Services": [{"InstanceType": INSTANCE, "Replicas": 1, "MlModelInfo": model}],
    }
    ids.group, ids.service = created_ids(data_of(client, "CreateMLModelServices", request))
    found.settle()
    ids.token = found.new_token(ids.group)
    try:
        yield found
    finally:
        found.cleanup()
        found.made_groups = [ids.group]
        found.cleanup()


def pytest_configure(config):
    config.addinivalue_line("markers", "conformance: the wire against the real schema (tests/conformance)")


# ---- a per-action summary at the end of the run ------------------------------------------------

_RESULTS: dict[str, dict[str, str]] = {}  # action → {kind of check: "ok" or why it failed}
_KINDS = {
    "minimal_request": "minimal",
    "every_member": "full",
    "published_example": "example",
    "any_request": "any",
    "malformed_request": "malformed",
}


def pytest_runtest_logreport(report):
    if "[" not in report.nodeid or "conformance" not in report.nodeid:
        return
    if report.when != "call" and not (report.failed or report.skipped):
        return
    kind = next((k for part, k in _KINDS.items() if part in report.nodeid), None)
    if kind is None:
        return
    action = report.nodeid.rsplit("[", 1)[1].rstrip("]")
    if report.passed:
        outcome = "ok"
    elif report.skipped:
        outcome = "skipped"
    else:
        crash = getattr(report.longrepr, "reprcrash", None)
        outcome = (crash.message if crash else str(report.longrepr)).splitlines()[0][:160]
    _RESULTS.setdefault(action, {})[kind] = outcome


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    terminalreporter.section("conformance, action by action")
    for action in sorted(_RESULTS):
        checks = _RESULTS[action]
        failed = {k: v.removeprefix("Failed: ") for k, v in checks.items() if v not in ("ok", "skipped")}
        passed = ", ".join(f"{k} {v}" for k, v in checks.items() if k not in failed)
        terminalreporter.write_line(f"{'FAIL' if failed else 'ok  '} {action}: {passed}")
        for kind, why in failed.items():
            terminalreporter.write_line(f"       {kind}: {why}")
