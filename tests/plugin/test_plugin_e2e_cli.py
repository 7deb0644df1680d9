"""The `mlflow deployments` CLI, as a user types it, against a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.support.server import free_port

from .plugin_e2e import CONSTANT, unique, wait_until

SCRUBBED = (
    "KERNEL_WEDATA_CLOUD_SDK_SECRET_ID",
    "KERNEL_WEDATA_CLOUD_SDK_SECRET_KEY",
    "KERNEL_WEDATA_CLOUD_SDK_SECRET_TOKEN",
    "WEDATA_WORKSPACE_ID",
    "TCDEPLOY_DATA_DIR",
    "TENCENTCLOUD_SECRET_ID",
    "TENCENTCLOUD_SECRET_KEY",
)


def cli_env(server, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    return {**env, **server.client_env(), **extra}


def mlflow(server, *args, env=None, check=True, timeout=300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mlflow", "deployments", *args]
    if "-t" not in args and args[0] != "run-local":
        command += ["-t", server.target]
    result = subprocess.run(command, env=env or cli_env(server), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def input_file(tmp_path_factory, iris):
    path = tmp_path_factory.mktemp("cli") / "input.json"
    path.write_text(iris[0].head(5).to_json(orient="records"))  # what pandas.read_json reads back
    return path


@pytest.fixture(scope="module")
def cli_deployment(tcdeploy_server, registered_model):
    """`mlflow deployments create`: its name and output; deleted (via the CLI) after the module."""
    name = unique("cli")
    result = mlflow(
        tcdeploy_server,
        "create",
        "--name",
        name,
        "-m",
        f"models:/{registered_model}/1",
        "-C",
        "replicas=1",
        "-C",
        "max_batch_size=8",
        "-C",
        "timeout=300",
        "-C",
        "instance_type=ti.s.micro.post",  # as a person may type it
    )
    try:
        yield name, result
    finally:
        mlflow(tcdeploy_server, "delete", "--name", name, check=False)


def test_create_prints_progress_and_the_deployment(cli_deployment):
    name, result = cli_deployment
    assert f"python_function deployment {name} is created" in result.stdout
    assert f"{name} (" in result.stderr and "RUNNING, 1/1 replicas ready" in result.stderr


def test_get_and_list(tcdeploy_server, cli_deployment):
    name, _ = cli_deployment
    got = mlflow(tcdeploy_server, "get", "--name", name).stdout
    assert f"name: {name}" in got and "status: RUNNING" in got and "service_id: " in got
    assert "batch_config: {'max_batch_size': 8" in got and "instance_type: TI.S.MICRO.POST" in got
    listed = mlflow(tcdeploy_server, "list").stdout
    assert "List of all deployments" in listed and f"'name': '{name}'" in listed
    # A list shows what a person scans for; the full detail (pods, limits, ...) is get's.
    assert "'status': 'RUNNING', 'replicas': 1, 'ready_replicas': 1, 'url': 'http" in listed
    assert "'pods'" not in listed and "workload_status" not in listed


def test_predict_by_name_and_by_endpoint(tcdeploy_server, cli_deployment, input_file, logistic_predictions):
    name, _ = cli_deployment
    for option in ("--name", "--endpoint"):
        out = mlflow(tcdeploy_server, "predict", option, name, "-I", str(input_file)).stdout
        assert json.loads(out)["predictions"] == logistic_predictions[:5]


@pytest.fixture(scope="module")
def request_files(tmp_path_factory, iris):
    """The same five rows in each of MLflow's scoring-server forms, as `mlflow models serve` users
    have them, one with an id column the signature does not name."""
    frame = iris[0].head(5)
    records = frame.to_dict(orient="records")
    forms = {
        "split with an id": {"dataframe_split": frame.assign(id=range(5)).to_dict(orient="split", index=False)},
        "records": {"dataframe_records": records},
        "instances": {"instances": records},
        "inputs with params": {"inputs": frame.to_dict(orient="list"), "params": {}},
    }
    folder = tmp_path_factory.mktemp("forms")
    for name, document in forms.items():
        (folder / f"{name}.json").write_text(json.dumps(document))
    return sorted(folder.iterdir())


def test_predict_takes_mlflows_request_forms(tcdeploy_server, cli_deployment, request_files, logistic_predictions):
    name, _ = cli_deployment
    for path in request_files:
        done = mlflow(tcdeploy_server, "predict", "--name", name, "-I", str(path))
        assert json.loads(done.stdout)["predictions"] == logistic_predictions[:5], path.name
        dropped = "column(s) 'id' are not in the model's signature: dropped" in done.stderr
        assert dropped == ("with an id" in path.name), done.stderr[-2000:]  # the reply's Warning, told


def test_update(tcdeploy_server, cli_deployment, client):
    name, _ = cli_deployment
    out = mlflow(tcdeploy_server, "update", "--name", name, "-C", "service_description=from the cli").stdout
    assert f"Deployment {name} is updated (with flavor python_function)" in out
    assert client.get_deployment(name)["service_description"] == "from the cli"


def test_endpoint_commands(tcdeploy_server, cli_deployment, client, registered_model):
    name, _ = cli_deployment
    endpoint = unique("cli-ep")
    # `mlflow deployments create-endpoint` cannot work with any plugin in MLflow 3.x: the command
    # takes --endpoint but its function expects `name` (TypeError). Create it in Python instead.
    client.create_endpoint(endpoint, config={"authorization_enable": "false"})
    inside = unique("cli-ep-v")
    client.create_deployment(inside, f"models:/{registered_model}/2", config={"wait": False}, endpoint=endpoint)
    try:
        assert f"name: {endpoint}" in mlflow(tcdeploy_server, "get-endpoint", "--endpoint", endpoint).stdout
        assert f"'name': '{endpoint}'" in mlflow(tcdeploy_server, "list-endpoints").stdout
        # The deployment's own endpoint (made by create) takes a traffic update.
        out = mlflow(tcdeploy_server, "update-endpoint", "--endpoint", name, "-C", f'traffic={{"{name}": 100}}').stdout
        assert f"Endpoint {name} is updated" in out
    finally:
        deleted = mlflow(tcdeploy_server, "delete-endpoint", "--endpoint", endpoint)
        assert f"Endpoint {endpoint} is deleted" in deleted.stdout
        assert f"deleting endpoint {endpoint!r} with its deployments: {inside}" in deleted.stderr
    again = mlflow(tcdeploy_server, "delete-endpoint", "--endpoint", endpoint)  # idempotent
    assert f"endpoint {endpoint!r} does not exist: nothing to delete" in again.stderr


def test_delete_twice(tcdeploy_server, registered_model, client):
    name = unique("cli-gone")
    client.create_deployment(name, f"models:/{registered_model}/2", config={"wait": False})
    for _ in range(2):
        assert f"Deployment {name} is deleted" in mlflow(tcdeploy_server, "delete", "--name", name).stdout
    # Idempotent, as MLflow's contract has it, but not silent about there being nothing.
    assert (
        f"deployment {name!r} does not exist: nothing to delete"
        in mlflow(tcdeploy_server, "delete", "--name", name).stderr
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["create", "--name", "x", "-m", "models:/x/1", "-C", "bogus=1"], "unknown config key 'bogus'"),
        (["update-endpoint", "--endpoint", "nope", "-C", "traffic=50"], "must be a JSON object"),
        (["get", "--name", "no-such-deployment"], "deployment 'no-such-deployment' does not exist"),
        (["update-endpoint", "--endpoint", "nope", "-C", 'traffic={"a": 1}'], "endpoint 'nope' does not exist"),
    ],
)
def test_bad_input_ends_with_a_clear_message(tcdeploy_server, args, message):
    result = mlflow(tcdeploy_server, *args, check=False)
    assert result.returncode != 0
    assert one_line_error(result.stderr).startswith("Error: ") and message in result.stderr


def one_line_error(stderr: str) -> str:
    """The error, as the only line that is not MLflow's own start-up chatter (a warning line)."""
    lines = [line for line in stderr.strip().splitlines() if "warnings.warn" not in line and "Warning" not in line]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def test_a_model_uri_that_names_nothing_leaves_nothing(tcdeploy_server, client):
    missing = {
        "runs:/0123456789abcdef0123456789abcdef/model": "is not in the server's tracking store",
        "models:/no-such-model/1": "is not in the registry",
    }
    for uri, message in missing.items():
        name = unique("cli-nothing")
        result = mlflow(tcdeploy_server, "create", "--name", name, "-m", uri, check=False)
        assert result.returncode != 0 and message in one_line_error(result.stderr)
        assert name not in [d["name"] for d in client.list_deployments()]
        assert name not in [e["name"] for e in client.list_endpoints()]


def test_a_server_not_running_is_named(tcdeploy_server):
    where = f"127.0.0.1:{free_port()}"
    result = mlflow(tcdeploy_server, "list", "-t", f"tcdeploy://{where}", check=False)
    assert result.returncode != 0
    assert f"Connection refused. Is `tcdeploy server` running at http://{where}?" in one_line_error(result.stderr)


def test_missing_credentials_and_disallowed_hosts(tcdeploy_server, tmp_path):
    env = {k: v for k, v in cli_env(tcdeploy_server).items() if not k.startswith("TENCENTCLOUD_SECRET")}
    result = mlflow(tcdeploy_server, "list", env={**env, "TCDEPLOY_DATA_DIR": str(tmp_path)}, check=False)
    assert result.returncode != 0 and "TENCENTCLOUD_SECRET_ID" in result.stderr.splitlines()[-1]
    result = mlflow(tcdeploy_server, "list", "-t", "tcdeploy://evil.example.com:8600", check=False)
    assert result.returncode != 0 and "TCDEPLOY_ALLOWED_HOSTS" in result.stderr.splitlines()[-1]


def test_run_local_serves_like_a_replica(tcdeploy_server, logistic_model_dir, iris):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "deployments",
        "run-local",
        "-t",
        "tcdeploy",
        "--name",
        "local",
        "-m",
        str(logistic_model_dir),
        "-C",
        f"port={port}",
    ]
    process = subprocess.Popen(
        command, env=cli_env(tcdeploy_server), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_until(lambda: _pings(port) or process.poll() is not None, timeout=180)
        assert process.poll() is None, process.stdout.read().decode()
        X = iris[0].head(3)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/predict",
            timeout=30,
            json={"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}},
        )
        assert reply.status_code == 200 and len(reply.json()["predictions"]) == 3
        assert CONSTANT not in reply.json()["predictions"]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def _pings(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
