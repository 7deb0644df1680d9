"""wedata calls for the tests of wedata's actions: replies checked against the real schema before a
test reads them, and a running service to act on."""

from __future__ import annotations

from pathlib import Path

from tcdeploy.protocol.effects import REPLY_EXTENSIONS
from tcdeploy.protocol.schema import reply_mismatches
from tests.support.cloudapi import call, create_service, wait_for_status

WS = "default"
# Our own reply members, as docs/wire.md names them (never in place of a schema member).
EXTENSIONS = {struct: set(members) for struct, members in REPLY_EXTENSIONS.items()}


def checked(client, action: str, params: dict) -> dict:
    """The reply's `Data`, after asserting it has the schema's members and types."""
    data = call(client, action, params)["Data"]
    assert reply_mismatches(action, data, extensions=EXTENSIONS) == [], data
    return data


def running_service(client, name: str, model_dir: Path, **settings) -> dict:
    """A new service (in a new group) of the model in `model_dir`, once it is RUNNING."""
    item = {"InstanceType": "TI.S.SMALL.POST", "Replicas": 1, "MlModelInfo": {"ModelPath": str(model_dir)}, **settings}
    created = create_service(client, {"WorkspaceId": WS, "ServiceName": name, "Services": [item]})
    detail = wait_for_status(client, created["ServiceId"], {"RUNNING", "CREATE_FAILED"})
    assert detail["Status"] == "RUNNING", detail
    return detail


def flat_create(client, name: str, model_dir: Path, **members) -> dict:
    """`CreateMLModelService` (the single create, members flat), its reply checked."""
    body = {"WorkspaceId": WS, "ServiceName": name, "InstanceType": "TI.S.SMALL.POST", **members}
    return checked(client, "CreateMLModelService", {**body, "MlModelInfo": {"ModelPath": str(model_dir)}})


def delete_group(client, group_id: str) -> None:
    assert checked(client, "DeleteMLModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": group_id}) == {
        "Status": True
    }
