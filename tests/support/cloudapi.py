"""Official-SDK clients pointed at a local server, and a raw signer for bodies the SDK won't send."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone

import httpx
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.sign import Sign
from tencentcloud.tione.v20211111.tione_client import TioneClient

VERSIONS = {"wedata": "2025-10-10", "tione": "2021-11-11"}


def _profile(port: int) -> ClientProfile:
    return ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=f"127.0.0.1:{port}", reqTimeout=120))


def common_client(server, service: str = "wedata", secret_id=None, secret_key=None) -> CommonClient:
    cred = credential.Credential(secret_id or server.secret_id, secret_key or server.secret_key)
    return CommonClient(service, VERSIONS[service], cred, "ap-guangzhou", _profile(server.port))


def tione_client(server) -> TioneClient:
    return TioneClient(
        credential.Credential(server.secret_id, server.secret_key), "ap-guangzhou", _profile(server.port)
    )


def call(client: CommonClient, action: str, params: dict) -> dict:
    """The reply's `Response` (without RequestId)."""
    reply = client.call_json(action, params)["Response"]
    reply.pop("RequestId", None)
    return reply


def error_of(client: CommonClient, action: str, params: dict) -> TencentCloudSDKException:
    try:
        client.call_json(action, params)
    except TencentCloudSDKException as exc:
        return exc
    raise AssertionError(f"{action} did not fail")


def create_service(client: CommonClient, params: dict) -> dict:
    """`CreateMLModelServices`, and the new service out of its reply (the reply is the whole group)."""
    group = call(client, "CreateMLModelServices", params)["Data"]
    return next(s for s in group["Services"] if s["ServiceName"] == params["ServiceName"])


def ready_replicas(detail: dict) -> int:
    return detail["WorkloadStatus"]["ReadyReplicas"]


def reason(detail: dict) -> str:
    return (detail.get("WorkloadStatus") or {}).get("Reason") or ""


def pod_facts(detail: dict) -> list[dict]:
    """Each pod of a service detail (`PodInfos[]` and its container) as name, phase, readiness,
    restarts and reason: what the tests look at."""
    facts = []
    for pod in detail.get("PodInfos") or []:
        container = (pod.get("ContainerInfos") or [{}])[0]
        facts.append({
            "PodName": pod["Name"],
            "Phase": pod["Phase"],
            "Ready": container.get("Ready", False),
            "RestartCount": container.get("RestartCount", 0),
            "Reason": container.get("Reason", ""),
            "Message": container.get("Message", ""),
        })  # fmt: skip
    return facts


def events_of(client: CommonClient, service_id: str, workspace: str = "default") -> list[dict]:
    """The service's events (`ListModelServiceEvents`), oldest first."""
    body = {"WorkspaceId": workspace, "ServiceId": service_id, "Limit": 1000, "Order": "ASC"}
    return call(client, "ListModelServiceEvents", body)["Data"]["Events"] or []


def wait_for_status(
    client: CommonClient, service_id: str, wanted: set[str], timeout: float = 120, workspace: str = "default"
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        data = call(client, "GetMLModelService", {"WorkspaceId": workspace, "ServiceId": service_id})["Data"]
        if data["Status"] in wanted:
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"{service_id} still {data['Status']} after {timeout}s: {reason(data)}")
        time.sleep(0.3)


def raw_post(
    server,
    action: str,
    body: bytes,
    service: str = "wedata",
    timestamp: int | None = None,
    secret_key: str | None = None,
) -> dict:
    """POST a body exactly as given, signed as the SDK signs (for bodies the SDK cannot produce)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    host = f"127.0.0.1:{server.port}"
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:application/json\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = Sign.sign_tc3(secret_key or server.secret_key, date, service, to_sign)
    headers = {
        "Content-Type": "application/json",
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Version": VERSIONS[service],
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Region": "ap-guangzhou",
        "Authorization": f"TC3-HMAC-SHA256 Credential={server.secret_id}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={signature}",
    }
    reply = httpx.post(server.url + "/", content=body, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    return json.loads(reply.text)["Response"]
