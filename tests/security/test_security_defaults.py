"""Safe defaults: loopback bind, private files, and no secret in a log line or an error message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tcdeploy.server.runtime.launch import passed_env
from tests.support.cloudapi import call, common_client
from tests.support.server import free_port, start_server

from .security_estate import PREDICT_BODY, Estate, Key, envelope_of, signed_headers, token_values

LOOPBACK = {"127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    """`tcdeploy server` with nothing but a port and a data dir that does not exist yet."""
    tmp_path = tmp_path_factory.mktemp("defaults")
    data_dir = tmp_path / "fresh" / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCDEPLOY_")}
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tcdeploy", "server", "--port", str(port), "--data-dir", str(data_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not come up:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield process, port, data_dir, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_server_listens_on_loopback_only_by_default(default_server):
    process, port, _, _ = default_server
    listening = [
        c.laddr for c in psutil.Process(process.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    ]
    assert listening, "no listening socket found"
    assert {addr.ip for addr in listening} <= LOOPBACK, listening
    assert port in {addr.port for addr in listening}


def test_the_data_dir_and_its_secrets_are_private(default_server):
    _, _, data_dir, log_path = default_server
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "credentials.json") == 0o600
    assert mode(data_dir / "server-secret") == 0o600
    generated = json.loads((data_dir / "credentials.json").read_text())["Keys"][0]["SecretKey"]
    assert generated not in log_path.read_text(), "the generated SecretKey was printed"


def test_a_data_dir_left_open_is_made_private_when_the_server_starts(tmp_path):
    """A data dir made by hand, copied or left by an older version: the server closes it."""
    data_dir = tmp_path / "loose"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    for name in ("credentials.json", "server-secret"):
        (data_dir / name).touch()
    (data_dir / "credentials.json").write_text(json.dumps({"Keys": [{"SecretId": "AKIDx", "SecretKey": "k"}]}))
    (data_dir / "server-secret").write_text("ab" * 32)
    for name in ("credentials.json", "server-secret"):
        os.chmod(data_dir / name, 0o644)
    server = start_server(data_dir)
    try:
        assert mode(data_dir) == 0o700
        assert {name: mode(data_dir / name) for name in ("credentials.json", "server-secret", "state.db")} == {
            "credentials.json": 0o600,
            "server-secret": 0o600,
            "state.db": 0o600,
        }
    finally:
        server.stop()


def test_add_key_makes_a_private_data_dir(estate):
    # The estate's data dir was first made by `tcdeploy add-key`.
    assert mode(estate.data_dir) == 0o700
    assert mode(estate.data_dir / "credentials.json") == 0o600


# ---- no secret leaks ------------------------------------------------------------------------------


def secrets_of(estate: Estate, extra: set[str]) -> set[str]:
    keys = json.loads((estate.data_dir / "credentials.json").read_text())["Keys"]
    server_secret = (estate.data_dir / "server-secret").read_text().strip()
    return {estate.admin.secret_key, *(k["SecretKey"] for k in keys), server_secret, *extra}


def failing_session(estate: Estate) -> tuple[list[str], set[str]]:
    """Calls that fail in every way a secret could be echoed; returns what the caller was told
    (every error message and refused data-plane reply) and the secrets it handled."""
    a, b = estate.a, estate.b
    told: list[str] = []
    handled: set[str] = set()
    url = estate.server.url + "/"
    host = f"127.0.0.1:{estate.server.port}"

    def control(action: str, body: dict, key=estate.admin, service="wedata", **kw) -> dict:
        raw = json.dumps(body).encode()
        reply = envelope_of(
            httpx.post(url, content=raw, headers=signed_headers(host, action, raw, key, service, **kw), timeout=60)
        )
        if "Error" in reply:
            told.append(reply["Error"]["Message"])
        return reply

    def predict(token: str | None, target: str) -> int:
        headers = {"Content-Type": "application/json", **({"Authorization": token} if token else {})}
        reply = httpx.post(target, content=PREDICT_BODY, headers=headers, timeout=60)
        if reply.status_code >= 400:
            told.append(reply.text)
        return reply.status_code

    get_b = {"WorkspaceId": b.workspace, "ServiceId": b.service_id}
    group_b = {"TiProjectId": b.workspace, "ServiceGroupId": b.group_id}
    control("GetMLModelService", get_b, key=Key(estate.admin.secret_id, a.key.secret_key))
    control("GetMLModelService", get_b, key=Key("AKIDnobody", b.key.secret_key))
    control("GetMLModelService", get_b, timestamp=int(time.time()) - 3600)
    control("GetMLModelService", get_b, key=a.key)
    control("GetMLModelService", {**get_b, "SecretKey": estate.admin.secret_key})
    control("UpdateMLModelService", {**get_b, "Replicas": b.key.secret_key})
    control("UpdateMLModelService", {**get_b, "ServiceAction": estate.admin.secret_key})
    control("DeleteModelServiceAuthToken", {**group_b, "AuthTokenValue": a.token}, service="tione")
    control(
        "ModelServiceInterfaceCallTest",
        {
            "WorkspaceId": b.workspace,
            "ServiceGroupId": b.group_id,
            "ServiceId": b.group_id,
            "CurlData": PREDICT_BODY,
            "AuthTokenValue": b.token,
            "RelativeUrl": "/predict/../admin",  # refused: a path that climbs out
        },
    )
    called = control(
        "ModelServiceInterfaceCallTest",
        {
            "WorkspaceId": b.workspace,
            "ServiceGroupId": b.group_id,
            "ServiceId": b.group_id,
            "RelativeUrl": "/predict",
            "CurlData": PREDICT_BODY,
            "AuthTokenValue": a.token,
        },
    )
    told.append(json.loads(called["Data"]["CurlResponseRaw"])["body"])

    control("CreateModelServiceAuthToken", {**group_b, "Name": "leak-check"}, service="tione")
    tione = common_client(estate.server, "tione", b.key.secret_id, b.key.secret_key)
    (fresh,) = set(token_values(tione, b.workspace, b.group_id)) - {b.token}
    handled |= {a.token, b.token, fresh}
    assert predict(fresh, estate.predict_url(b)) == 200
    control("DeleteModelServiceAuthToken", {**group_b, "AuthTokenValue": fresh}, service="tione")
    for token, target in [
        (fresh, estate.predict_url(b)),
        (a.token, estate.predict_url(b, "services")),
        (f"Bearer {b.token}x", estate.predict_url(b)),
        (b.token, estate.predict_url(a)),
    ]:
        assert predict(token, target) >= 400

    pod_link = call(estate.client(b.key), "CreateModelServicePodUrl", {**get_b, "PodName": b.pod_name})["Data"]["Url"]
    link_token = pod_link.split("token=", 1)[1]
    handled |= {link_token, link_token.split(".", 1)[1]}
    refused = httpx.get(pod_link + "0", timeout=30)
    told.append(refused.text)
    return told, handled


def test_no_secret_in_a_log_line_or_an_error_message(estate):
    told, handled = failing_session(estate)
    assert len(told) >= 15
    secrets = secrets_of(estate, handled)
    assert all(len(s) >= 16 for s in secrets)
    logs = {estate.server.log_path: estate.server.log_path.read_text(errors="replace")}
    for path in sorted((estate.data_dir / "logs").rglob("*")):
        if path.is_file():
            logs[path] = path.read_text(errors="replace")
    assert any(estate.b.pod_name in str(p) for p in logs), "no replica log found"
    for secret in secrets:
        assert not [m for m in told if secret in m], "a secret is in an error message"
        assert not [p for p, text in logs.items() if secret in text], "a secret is in a log"


def replicas_of(estate: Estate) -> list[psutil.Process]:
    replicas = [
        p
        for p in psutil.Process(estate.server.process.pid).children(recursive=True)
        if "tcdeploy.server.replica" in " ".join(p.cmdline())
    ]
    assert replicas, "no replica process found"
    return replicas


# What the server sets for a replica itself (the estate's services have no `Env`).
SET_FOR_REPLICAS = {
    "PYTHONUNBUFFERED", "PYTHONSAFEPATH", "MLFLOW_TRACKING_URI",
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "JE_ARROW_MALLOC_CONF",  # a forked replica's zygote keeps pyarrow's jemalloc thread off (forkserver.py)
}  # fmt: skip


def test_replicas_get_an_allow_listed_environment(estate):
    """What MLflow and the process need pass; the server's own settings do not."""
    server_env = psutil.Process(estate.server.process.pid).environ()
    assert server_env["SERVER_ONLY_SETTING"] == "not-for-replicas"
    for replica in replicas_of(estate):
        env = replica.environ()
        assert "SERVER_ONLY_SETTING" not in env
        assert env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false" and env["PATH"] == server_env["PATH"]
        assert env["MLFLOW_TRACKING_URI"] and env["OMP_NUM_THREADS"] == "1"
        extra = set(env) - set(passed_env(server_env))
        assert extra <= SET_FOR_REPLICAS, f"not allow-listed: {sorted(extra - SET_FOR_REPLICAS)}"


def test_replicas_do_not_inherit_the_servers_keys(estate):
    """A replica runs the model's code: it gets no access key through its environment."""
    replicas = replicas_of(estate)
    secrets = {estate.admin.secret_key, estate.a.key.secret_key, estate.b.key.secret_key}
    for replica in replicas:
        leaked = {name for name, value in replica.environ().items() if any(s in value for s in secrets)}
        assert not leaked, f"replica {replica.pid} has access keys in {sorted(leaked)}"
