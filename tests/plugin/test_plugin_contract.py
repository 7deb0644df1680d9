"""The plugin as MLflow loads it: entry point, module shape, help, light import, early refusals."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.deployments import BaseDeploymentClient, get_deploy_client
from mlflow.deployments.plugin_manager import DeploymentPlugins
from mlflow.exceptions import MlflowException

import tcdeploy
from tcdeploy.plugin import configkeys

PACKAGE = Path(tcdeploy.__file__).parent
# What MLflow loads for the target: tcdeploy/__init__.py and every module of tcdeploy/plugin/.
PLUGIN_MODULES = sorted((PACKAGE / "plugin").glob("*.py"))
CLIENT_MODULES = [PACKAGE / "__init__.py", *PLUGIN_MODULES]
CREDENTIAL_VARS = [
    "KERNEL_WEDATA_CLOUD_SDK_SECRET_ID",
    "KERNEL_WEDATA_CLOUD_SDK_SECRET_KEY",
    "TENCENTCLOUD_SECRET_ID",
    "TENCENTCLOUD_SECRET_KEY",
    "TCDEPLOY_DATA_DIR",
]


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDplugin")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "plugin-secret-key")


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TCDEPLOY_DATA_DIR", str(tmp_path))  # an empty data dir: no credentials.json


def test_mlflow_finds_and_accepts_the_plugin():
    plugins = DeploymentPlugins()
    module = plugins["tcdeploy"]  # runs MLflow's own shape checks
    assert module is tcdeploy
    assert plugins["tcdeploy://127.0.0.1:8600"] is tcdeploy


def test_module_shape():
    subclasses = [
        o for _, o in inspect.getmembers(tcdeploy) if inspect.isclass(o) and issubclass(o, BaseDeploymentClient)
    ]
    assert subclasses == [tcdeploy.TcDeploymentClient]
    assert "BaseDeploymentClient" not in vars(tcdeploy)
    assert callable(tcdeploy.run_local) and callable(tcdeploy.target_help)
    assert list(inspect.signature(tcdeploy.run_local).parameters) == ["name", "model_uri", "flavor", "config"]


def test_get_deploy_client_returns_our_client(credentials):
    client = get_deploy_client("tcdeploy://127.0.0.1:8600")
    assert isinstance(client, tcdeploy.TcDeploymentClient)
    assert client.target_uri == "tcdeploy://127.0.0.1:8600"
    assert "plugin-secret-key" not in repr(client) + repr(vars(client))


def test_method_signatures_match_what_the_mlflow_cli_passes():
    client_cls = tcdeploy.TcDeploymentClient
    for method, params in {
        "create_deployment": ["name", "model_uri", "flavor", "config", "endpoint"],
        "update_deployment": ["name", "model_uri", "flavor", "config", "endpoint"],
        "delete_deployment": ["name", "config", "endpoint"],
        "get_deployment": ["name", "endpoint"],
        "list_deployments": ["endpoint"],
        "predict": ["deployment_name", "inputs", "endpoint", "params"],
        "create_endpoint": ["name", "config"],
        "update_endpoint": ["endpoint", "config"],
        "get_endpoint": ["endpoint"],
        "delete_endpoint": ["endpoint"],
        "list_instance_types": ["spec_type"],
        "get_pod_logs": ["service_id", "pod_name", "limit", "start_time", "end_time", "context"],
        "restart_pod": ["service_id", "pod_name"],
        "debug_pod_shell": ["service_id", "pod_name"],
    }.items():
        assert list(inspect.signature(getattr(client_cls, method)).parameters)[1:] == params, method


def test_target_help_lists_uris_every_key_env_and_examples():
    text = tcdeploy.target_help()
    for fragment in (
        "tcdeploy://127.0.0.1:8600",
        "tcdeploy:/<region>",
        "TCDEPLOY_ALLOWED_HOSTS",
        "KERNEL_WEDATA_CLOUD_SDK_SECRET_ID",
        "TENCENTCLOUD_SECRET_ID",
        "WEDATA_WORKSPACE_ID",
        "TCDEPLOY_DATA_DIR",
        "mlflow deployments create -t tcdeploy://127.0.0.1:8600 --name iris",
    ):
        assert fragment in text
    for catalogue in (
        configkeys.CREATE_KEYS,
        configkeys.UPDATE_KEYS,
        configkeys.ENDPOINT_UPDATE_KEYS,
        configkeys.RUN_LOCAL_KEYS,
    ):
        for key in catalogue.values():
            assert f"  {key.name} " in text and key.doc in text
    assert "int, default 1" in text and "number, default 900" in text


def test_mlflow_cli_help_prints_it():
    result = subprocess.run(
        [sys.executable, "-m", "mlflow", "deployments", "help", "-t", "tcdeploy"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Deployment config" in result.stdout and "instance_type" in result.stdout


def test_importing_the_plugin_adds_only_its_own_modules():
    # Whatever MLflow and the SDK load themselves is their business; tcdeploy adds nothing else.
    probe = (
        "import sys; import mlflow.deployments, mlflow.exceptions, tencentcloud.common.common_client; "
        "before = set(sys.modules); import tcdeploy; "
        "added = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(added - set(sys.stdlib_module_names) - {'tcdeploy'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _imported_names(node: ast.AST, package: str) -> list[str]:
    """The modules an import statement may load (``from a import b``: ``a`` and ``a.b``), with
    relative imports resolved from ``package``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
    module = ".".join(p for p in (base, node.module or "") if p)
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def test_the_checks_below_see_the_plugin_package():
    assert {"client.py", "cloudapi.py", "settings.py", "bodies.py"} <= {p.name for p in PLUGIN_MODULES}


@pytest.mark.parametrize("path", CLIENT_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_client_modules_import_nothing_heavy_at_module_level(path):
    # mlflow (full) may pull pandas in itself; our own modules must not, so mlflow-skinny suffices.
    allowed = {"__future__", "mlflow", "tencentcloud", "tcdeploy"}
    stdlib = set(sys.stdlib_module_names)
    package = "tcdeploy" if path.name == "__init__.py" and path.parent == PACKAGE else "tcdeploy.plugin"
    for node in ast.parse(path.read_text()).body:
        for name in _imported_names(node, package):
            top = name.split(".")[0]
            assert top in stdlib or top in allowed, f"{path.name} imports {name} at module level"
            assert not name.startswith("tcdeploy.server"), f"{path.name} imports the server"


@pytest.mark.parametrize("path", PLUGIN_MODULES, ids=lambda p: p.name)
def test_the_plugin_package_never_imports_the_server(path):
    # Not even inside a function: only tcdeploy.run_local (outside the package) may start a replica.
    for node in ast.walk(ast.parse(path.read_text())):
        for name in _imported_names(node, "tcdeploy.plugin"):
            assert name != "tcdeploy.server" and not name.startswith("tcdeploy.server."), (
                f"plugin/{path.name} imports {name}"
            )


def test_missing_credentials_name_the_variables(no_credentials):
    with pytest.raises(MlflowException) as info:
        get_deploy_client("tcdeploy://127.0.0.1:8600")
    message = str(info.value)
    assert "KERNEL_WEDATA_CLOUD_SDK_SECRET_ID" in message and "TENCENTCLOUD_SECRET_ID" in message
    assert "TCDEPLOY_DATA_DIR" in message


@pytest.mark.parametrize("target", ["tcdeploy://evil.example.com:8600", "tcdeploy://169.254.169.254"])
def test_disallowed_host_is_refused_before_any_request(credentials, target):
    with pytest.raises(MlflowException, match="TCDEPLOY_ALLOWED_HOSTS"):
        get_deploy_client(target)


def test_unsupported_methods_and_flavors_fail_before_the_network(credentials):
    client = get_deploy_client("tcdeploy://127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(MlflowException, match="not supported by the tcdeploy target"):
        client.explain("iris", None)
    with pytest.raises(MlflowException, match="predict_stream takes a chat request"):
        client.predict_stream("iris", {"inputs": [1]})
    with pytest.raises(MlflowException, match="flavor 'sklearn' is not supported"):
        client.create_deployment("iris", "models:/iris/1", flavor="sklearn")
    with pytest.raises(MlflowException, match="unknown config key 'replica'"):
        client.create_deployment("iris", "models:/iris/1", config={"replica": "2"})
    with pytest.raises(MlflowException, match="scheme 'http'"):
        client.create_deployment("iris", "http://example.com/model")


@pytest.mark.parametrize(
    "endpoint",
    [
        "//evil.com/predict",
        "http://evil.com",
        "/predict@evil.com",
        "%2f%2fevil.com",
        "/../admin",
        "/predict\r\nX: 1",
        "\\\\evil\\x",
    ],
)
def test_predict_refuses_ssrf_paths_before_the_network(credentials, endpoint):
    client = get_deploy_client("tcdeploy://127.0.0.1:1")
    with pytest.raises(MlflowException) as info:
        client.predict("iris", {"inputs": [[1, 2, 3, 4]]}, endpoint=endpoint)
    assert "unsafe relative URL" in str(info.value)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_unreachable_server_says_so(credentials, monkeypatch):
    monkeypatch.setenv("TCDEPLOY_MAX_ATTEMPTS", "1")
    client = get_deploy_client("tcdeploy://127.0.0.1:1")
    with pytest.raises(MlflowException) as info:
        client.list_deployments()
    assert "cannot get an answer from http://127.0.0.1:1" in str(info.value)
    assert "tcdeploy server" in str(info.value)
    assert info.value.error_code == "TEMPORARILY_UNAVAILABLE"


def test_cloud_target_requires_instance_type_and_a_workspace(credentials, monkeypatch):
    monkeypatch.delenv("WEDATA_WORKSPACE_ID", raising=False)
    with pytest.raises(MlflowException, match="WEDATA_WORKSPACE_ID"):
        get_deploy_client("tcdeploy:/ap-shanghai")
    monkeypatch.setenv("WEDATA_WORKSPACE_ID", "ws-1")
    client = get_deploy_client("tcdeploy:/ap-shanghai")
    with pytest.raises(MlflowException, match="'instance_type' is required on the cloud"):
        client.create_deployment("iris", "runs:/0123abcd/model")
