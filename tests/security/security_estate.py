"""The security tests' estate: one real server holding two workspaces, each with its own limited key.

Workspace `team-b` has a Running service (the logistic model, one replica) behind group auth;
workspace `team-a` has an idle service (0 replicas), also behind auth. Helpers here read the
server's state without going through it (the SQLite file), sign requests by hand, and check that
a reply is the control-plane envelope.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
from tencentcloud.common.sign import Sign

from tests.support.cloudapi import VERSIONS, call, common_client, create_service, pod_facts, reason, wait_for_status
from tests.support.server import BackgroundServer, start_server

# In the server's environment: the first is the server's alone, the second MLflow's (replicas get it).
SERVER_ONLY_ENV = {"SERVER_ONLY_SETTING": "not-for-replicas", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
WORKSPACE_A = "team-a"
WORKSPACE_B = "team-b"
WORKSPACE_FUZZ = "fuzz"  # the property tests' own: whatever they manage to change stays there
INSTANCE_TYPE = "TI.S.SMALL.POST"
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
PREDICT_BODY = json.dumps({"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}})
WORKSPACE_FIELD = {"wedata": "WorkspaceId", "tione": "TiProjectId"}


@dataclass(frozen=True)
class Key:
    secret_id: str
    secret_key: str


@dataclass(frozen=True)
class Side:
    """One workspace's key and resources."""

    workspace: str
    key: Key
    group_id: str
    group_name: str
    service_id: str
    service_name: str
    token: str
    pod_name: str | None  # None: the service runs no replica


@dataclass(frozen=True)
class Estate:
    server: BackgroundServer
    a: Side
    b: Side
    fuzz_key: Key
    model_dir: Path

    @property
    def admin(self) -> Key:
        return Key(self.server.secret_id, self.server.secret_key)

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def client(self, key: Key, service: str = "wedata"):
        return common_client(self.server, service, key.secret_id, key.secret_key)

    def predict_url(self, side: Side, by: str = "groups") -> str:
        ident = side.group_id if by == "groups" else side.service_id
        return f"{self.server.url}/{by}/{ident}/predict"


# ---- building the estate ------------------------------------------------------------------------


def add_key(data_dir: Path, workspace: str) -> Key:
    """`tcdeploy add-key --workspace W`, then the new key as credentials.json holds it."""
    subprocess.run(
        [sys.executable, "-m", "tcdeploy", "add-key", "--workspace", workspace, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    keys = json.loads((data_dir / "credentials.json").read_text())["Keys"]
    entry = next(k for k in keys if k["Workspaces"] == [workspace])
    return Key(entry["SecretId"], entry["SecretKey"])


def build_estate(data_dir: Path, model_dir: Path) -> Estate:
    """Start a server on `data_dir` with a key per workspace; the caller stops `estate.server`."""
    keys = {ws: add_key(data_dir, ws) for ws in (WORKSPACE_A, WORKSPACE_B, WORKSPACE_FUZZ)}
    server = start_server(data_dir, extra_env=SERVER_ONLY_ENV)
    try:
        b = _make_side(server, WORKSPACE_B, keys[WORKSPACE_B], "b-iris", model_dir, replicas=1)
        a = _make_side(server, WORKSPACE_A, keys[WORKSPACE_A], "a-iris", model_dir, replicas=0)
    except BaseException:
        server.stop()
        raise
    return Estate(server, a, b, keys[WORKSPACE_FUZZ], model_dir)


def service_spec(model_dir: Path | str, replicas: int = 0) -> dict:
    return {"InstanceType": INSTANCE_TYPE, "Replicas": replicas, "MlModelInfo": {"ModelPath": str(model_dir)}}


def _make_side(server: BackgroundServer, workspace: str, key: Key, name: str, model_dir: Path, replicas: int) -> Side:
    wedata = common_client(server, "wedata", key.secret_id, key.secret_key)
    tione = common_client(server, "tione", key.secret_id, key.secret_key)
    created = create_service(
        wedata,
        {
            "WorkspaceId": workspace,
            "ServiceName": name,
            "AuthorizationEnable": True,
            "Services": [service_spec(model_dir, replicas)],
        },
    )
    pod_name = None
    if replicas:
        detail = wait_for_status(wedata, created["ServiceId"], {"RUNNING", "CREATE_FAILED"}, workspace=workspace)
        if detail["Status"] != "RUNNING":
            raise RuntimeError(f"the {workspace} service did not start: {reason(detail)}")
        pod_name = pod_facts(detail)[0]["PodName"]
    token = token_values(tione, workspace, created["ServiceGroupId"])[0]
    return Side(
        workspace,
        key,
        created["ServiceGroupId"],
        name,  # its group is named after it
        created["ServiceId"],
        name,
        token,
        pod_name,
    )


def token_values(tione_client, workspace: str, group_id: str) -> list[str]:
    info = call(tione_client, "DescribeModelServiceCallInfo", {"TiProjectId": workspace, "ServiceGroupId": group_id})
    return [t["Base"]["Value"] for t in info["ServiceCallInfoV2"]["AuthTokens"]]


# ---- state, read straight from the store ---------------------------------------------------------


def store_rows(data_dir: Path, workspace: str | None = None) -> dict[str, list[tuple]]:
    """The store's logical content (every row of every table), optionally one workspace's only."""
    db = sqlite3.connect(f"file:{data_dir / 'state.db'}?mode=ro", uri=True)
    try:
        where = {
            "groups": "WHERE workspace = ?",
            "services": "WHERE workspace = ?",
            "tokens": "WHERE group_id IN (SELECT id FROM groups WHERE workspace = ?)",
            "events": "WHERE service_id IN (SELECT id FROM services WHERE workspace = ?)",
        }
        rows = {}
        for table, clause in where.items():
            sql = f"SELECT * FROM {table} " + (clause if workspace else "")
            rows[table] = sorted(db.execute(sql, (workspace,) if workspace else ()).fetchall(), key=repr)
        return rows
    finally:
        db.close()


def pod_pids(data_dir: Path) -> dict[str, str]:
    """Pod name -> the pid its pid file holds: a restarted replica has a new one."""
    return {p.stem: p.read_text().strip() for p in sorted((data_dir / "run").glob("*.pid"))}


def side_state(estate: Estate, side: Side) -> tuple:
    """What must not move when someone else pokes at this workspace: its rows, its replicas."""
    detail = call(
        estate.client(estate.admin), "GetMLModelService", {"WorkspaceId": side.workspace, "ServiceId": side.service_id}
    )["Data"]
    pods = [(p["PodName"], p["Phase"], p["Ready"], p["RestartCount"]) for p in pod_facts(detail)]
    return store_rows(estate.data_dir, side.workspace), pods, pod_pids(estate.data_dir)


# The store's own words (ServiceStatus values), not the wire's.
TRANSITIONAL = ("Creating", "Updating", "Stopping", "Deleting")


def settled_rows(data_dir: Path, timeout: float = 15.0, quiet: float = 0.05) -> dict[str, list[tuple]]:
    """The store's content once background work (a stop, a delete, a rolling update) is done: no
    service in a passing state, and nothing changed for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    previous = store_rows(data_dir)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        current = store_rows(data_dir)
        if current == previous and not _services_passing(data_dir):
            return current
        previous = current
    raise AssertionError(f"the store kept changing for {timeout}s: {_services_passing(data_dir)}")


def _services_passing(data_dir: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(f"file:{data_dir / 'state.db'}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(TRANSITIONAL))
        return db.execute(f"SELECT id, status FROM services WHERE status IN ({marks})", TRANSITIONAL).fetchall()
    finally:
        db.close()


# ---- signing by hand and reading replies -----------------------------------------------------------


def signed_headers(
    host: str,
    action: str,
    body: bytes,
    key: Key,
    service: str = "wedata",
    timestamp: int | None = None,
    sign_action: bool = False,
) -> dict[str, str]:
    """Headers as the SDK makes them; with `sign_action`, X-TC-Action is signed too (as Tencent's
    documentation shows and some SDKs do)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    names = {"content-type": "application/json", "host": host}
    if sign_action:
        names["x-tc-action"] = action.lower()
    canonical_headers = "".join(f"{n}:{v}\n" for n, v in names.items())
    signed = ";".join(names)
    canonical = "\n".join(["POST", "/", "", canonical_headers, signed, hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = Sign.sign_tc3(key.secret_key, date, service, to_sign)
    return {
        "Content-Type": "application/json",
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Version": VERSIONS[service],
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Region": "ap-guangzhou",
        "Authorization": f"TC3-HMAC-SHA256 Credential={key.secret_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}",
    }


def envelope_of(reply: httpx.Response) -> dict:
    """The `Response` of a control-plane reply, after checking it is the envelope: HTTP 200, JSON,
    a RequestId, and, when it is an error, a string Code and Message."""
    if reply.status_code != 200:
        raise AssertionError(f"HTTP {reply.status_code}, not 200: {reply.text[:500]}")
    document = json.loads(reply.text)
    response = document.get("Response") if isinstance(document, dict) else None
    if not isinstance(response, dict) or set(document) != {"Response"}:
        raise AssertionError(f"not the envelope: {reply.text[:500]}")
    if not isinstance(response.get("RequestId"), str) or not response["RequestId"]:
        raise AssertionError(f"no RequestId: {reply.text[:500]}")
    error = response.get("Error")
    if error is not None:
        if (
            set(response) != {"Error", "RequestId"}
            or set(error) != {"Code", "Message"}
            or not all(isinstance(error[k], str) and error[k] for k in ("Code", "Message"))
        ):
            raise AssertionError(f"a malformed error: {reply.text[:500]}")
    return response


def error_code(response: dict) -> str | None:
    return (response.get("Error") or {}).get("Code")
