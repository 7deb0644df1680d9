"""tcdeploy: the MLflow deployment target for WeData-style model services.

This module is what MLflow loads for ``-t tcdeploy…``: it holds ``run_local``, ``target_help``
and exactly one ``BaseDeploymentClient`` subclass, ``TcDeploymentClient`` (from
``tcdeploy.plugin``, where the target's code lives). Importing it stays light (mlflow-skinny and
the Tencent Cloud SDK's common package); the server lives in ``tcdeploy.server`` and is only
imported by ``run_local``. ``TcDeploymentClient`` itself is imported on first use (PEP 562): the
``tcdeploy`` command lives in this package too, and must not wait seconds for MLflow to load
before it can print its help.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TcDeploymentClient", "run_local", "target_help"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "TcDeploymentClient":
        from tcdeploy.plugin.client import TcDeploymentClient

        return TcDeploymentClient
    raise AttributeError(f"module 'tcdeploy' has no attribute {name!r}")


def __dir__() -> list[str]:
    # MLflow's plugin manager finds the client class by listing the module's members.
    return sorted({*globals(), *__all__})


def run_local(name: str, model_uri: str, flavor: str | None = None, config: dict[str, Any] | None = None) -> None:
    """Serve ``model_uri`` in the foreground exactly as a replica does (same server, ``/predict``).

    ``config``: ``host`` (default 127.0.0.1), ``port`` (default 5000), ``max_batch_size`` and
    ``max_batch_wait_ms``.
    """
    from tcdeploy.plugin.bodies import parse_model_uri
    from tcdeploy.plugin.client import FLAVOR
    from tcdeploy.plugin.configkeys import RUN_LOCAL_KEYS, convert_config, invalid, with_defaults

    if flavor not in (None, FLAVOR):
        raise invalid(f"flavor {flavor!r} is not supported: replicas serve {FLAVOR!r}")
    values = with_defaults(convert_config(config, RUN_LOCAL_KEYS, "run_local"), RUN_LOCAL_KEYS)
    model = parse_model_uri(model_uri)
    from tcdeploy.server.replica import ModelLoadError, serve

    try:
        serve(
            model.path or model.uri,
            host=values["host"],
            port=int(values["port"]),
            max_batch_size=int(values["max_batch_size"]),
            max_batch_wait_ms=float(values["max_batch_wait_ms"]),
        )
    except ModelLoadError as exc:
        raise invalid(f"cannot serve {model_uri!r}: {exc}") from exc


_HELP = """\
tcdeploy: deploy MLflow models to WeData model services (Tencent Cloud) or to a self-hosted
`tcdeploy server`. MLflow endpoints are service groups (one URL, auth, traffic split); MLflow
deployments are services (a model version with its replicas) inside a group.

Target URIs
  tcdeploy://127.0.0.1:8600   a local `tcdeploy server` (http; also tcdeploy://localhost:PORT)
  tcdeploy                    Tencent Cloud, region from KERNEL_WEDATA_REGION / TENCENTCLOUD_REGION
  tcdeploy:/<region>          Tencent Cloud in that region, e.g. tcdeploy:/ap-shanghai
  Other hosts are refused (requests are signed with your credentials) unless listed in
  TCDEPLOY_ALLOWED_HOSTS; cloud hosts must be under *.tencentcloudapi.com or *.tencentcloud.com.

Deployment config (-C key=value; JSON for objects)
{create_keys}
Update-only config
{update_keys}
Endpoint config (create-endpoint / update-endpoint)
{endpoint_keys}
run-local config
{run_local_keys}
Names: deployments and endpoints are given by id (as the API gives them: a group is a UUID, a
service <group id>-<n>) or unique name. predict takes either: a deployment (that version only) or an endpoint (traffic weights apply).

Environment
  KERNEL_WEDATA_CLOUD_SDK_SECRET_ID / _SECRET_KEY / _SECRET_TOKEN   credentials (WeData notebooks)
  TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY / TENCENTCLOUD_SESSION_TOKEN   or these
  TCDEPLOY_DATA_DIR       local server's data dir: its credentials.json is used when no variable
                          is set (default ./.tcdeploy)
  WEDATA_WORKSPACE_ID     workspace (required on the cloud; "default" on a local server)
  KERNEL_WEDATA_REGION, TENCENTCLOUD_REGION   region (default ap-guangzhou)
  TENCENTCLOUD_ENDPOINT   cloud API host override (e.g. wedata.internal.tencentcloudapi.com)
  TCDEPLOY_ALLOWED_HOSTS  extra hosts (host or host:port, comma-separated) a target may name
  TCDEPLOY_REQUEST_TIMEOUT, TCDEPLOY_MAX_ATTEMPTS   per-call timeout (s, default 60), attempts (3)
  TCDEPLOY_TRACEBACK      set to 1: `mlflow deployments` errors with their traceback, not one line

Examples
  mlflow deployments create -t tcdeploy://127.0.0.1:8600 --name iris -m models:/iris/1 -C replicas=2
  mlflow deployments get -t tcdeploy://127.0.0.1:8600 --name iris
  echo '[{{"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4,
          "petal width (cm)": 0.2}}]' > input.json      # records, as pandas.read_json reads them
  mlflow deployments predict -t tcdeploy://127.0.0.1:8600 --name iris -I input.json
  mlflow deployments create -t tcdeploy://127.0.0.1:8600 --name iris-v2 -m models:/iris/2 --endpoint iris
  mlflow deployments update-endpoint -t tcdeploy://127.0.0.1:8600 --endpoint iris \\
      -C 'traffic={{"iris": 50, "iris-v2": 50}}'
  mlflow deployments predict -t tcdeploy://127.0.0.1:8600 --endpoint iris -I input.json
  mlflow deployments update -t tcdeploy://127.0.0.1:8600 --name iris -C service_action=STOP
  mlflow deployments delete -t tcdeploy://127.0.0.1:8600 --name iris
  mlflow deployments run-local -t tcdeploy --name iris -m models:/iris/1 -C port=5001
"""


def target_help() -> str:
    """What ``mlflow deployments help -t tcdeploy`` prints: URIs, config keys, environment, examples."""
    from tcdeploy.plugin import configkeys as keys

    create = keys.CREATE_KEYS
    update_only = {k: v for k, v in keys.UPDATE_KEYS.items() if k not in create}
    return _HELP.format(
        create_keys=keys.describe_keys(create),
        update_keys=keys.describe_keys(update_only),
        endpoint_keys=keys.describe_keys(keys.ENDPOINT_UPDATE_KEYS),
        run_local_keys=keys.describe_keys(keys.RUN_LOCAL_KEYS),
    )
