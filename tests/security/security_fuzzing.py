"""What the property tests share: the fuzz workspace's resources, and the property itself."""

from __future__ import annotations

import httpx

from tcdeploy.server.control.backend import INSTANCE_TYPES
from tests.support.cloudapi import call, create_service

from .security_bodies import Pool
from .security_estate import (
    WORKSPACE_FUZZ,
    Estate,
    envelope_of,
    error_code,
    service_spec,
    settled_rows,
    signed_headers,
    store_rows,
    token_values,
)

SERVICE_NAME = "fuzz-iris"


def fuzz_pool(estate: Estate, registered_model: str) -> Pool:
    """The fuzz workspace's group, service and token (made again if a fuzzed delete took them),
    as the pool valid-ish values are drawn from."""
    wedata = estate.client(estate.fuzz_key, "wedata")
    tione = estate.client(estate.fuzz_key, "tione")
    ws = {"WorkspaceId": WORKSPACE_FUZZ}
    listed = call(
        wedata, "ListMLModelServiceGroups", {**ws, "Filters": [{"Name": "ServiceName", "Values": [SERVICE_NAME]}]}
    )
    if not listed["Data"]["Rows"]:
        for group in call(tione, "DescribeModelServiceGroups", {"TiProjectId": WORKSPACE_FUZZ, "Limit": 100})[
            "ServiceGroups"
        ]:
            if group["ServiceGroupName"] == SERVICE_NAME:  # a group whose service a fuzzed delete took
                call(
                    tione,
                    "DeleteModelServiceGroup",
                    {"TiProjectId": WORKSPACE_FUZZ, "ServiceGroupId": group["ServiceGroupId"]},
                )
        create_service(
            wedata,
            {
                **ws,
                "ServiceName": SERVICE_NAME,
                "AuthorizationEnable": True,
                "Services": [service_spec(estate.model_dir)],
            },
        )
    detail = call(wedata, "GetMLModelService", {**ws, "ServiceId": SERVICE_NAME})["Data"]
    group_id = detail["ServiceGroupId"]
    tokens = token_values(tione, WORKSPACE_FUZZ, group_id)
    settled_rows(estate.data_dir)
    services = (detail["ServiceId"], SERVICE_NAME)
    groups = (group_id, SERVICE_NAME)  # the group is named after its first service
    return Pool(
        workspace=WORKSPACE_FUZZ,
        references={
            "ServiceId": services + groups[:1],
            "ServiceGroupId": groups,
            "AuthTokenValue": tuple(tokens[:1]),
            "PodName": (estate.b.pod_name, "*", "ms-*"),  # B's pod: out of reach from here
            "ModelName": (registered_model,),
            "Name": (registered_model, "1"),
            "Version": ("1",),
            "ServiceName": (SERVICE_NAME,),
            "ServiceGroupName": (SERVICE_NAME,),
        },
        instance_types=tuple(spec.name for spec in INSTANCE_TYPES),
    )


class Target:
    """One action of the server, sent bodies with the fuzz key; `send` checks the property."""

    def __init__(self, estate: Estate, http: httpx.Client, service: str, action: str) -> None:
        self.estate, self.http, self.service, self.action = estate, http, service, action
        self.host = f"127.0.0.1:{estate.server.port}"
        self.log_offset = estate.server.log_path.stat().st_size
        self.codes: list[str | None] = []

    def send(self, body: bytes, what: str = "") -> str | None:
        """The reply's error code (None: accepted), once it is checked to be the envelope and not
        an InternalError, and a refusal is checked to have changed nothing in the store."""
        before = store_rows(self.estate.data_dir)
        headers = signed_headers(self.host, self.action, body, self.estate.fuzz_key, self.service)
        reply = envelope_of(self.http.post(self.estate.server.url + "/", content=body, headers=headers))
        code = error_code(reply)
        assert code != "InternalError", (what, body[:300], reply)
        if code is None:
            settled_rows(self.estate.data_dir)  # let what it started (a stop, a delete) finish
        else:
            assert store_rows(self.estate.data_dir) == before, f"a refused request ({code}) changed the store: {what}"
        self.codes.append(code)
        return code

    def new_log(self) -> str:
        with open(self.estate.server.log_path, "rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")
