"""End-to-end fixtures: registered models on the session's real server, and a client for it."""

from __future__ import annotations

import numpy as np
import pytest

from .plugin_e2e import register_versions, unique


@pytest.fixture(scope="session")
def registered_model(tcdeploy_server, tmp_path_factory) -> str:
    """A registered model name on the server's registry: v1 logistic, v2 constant."""
    name = unique("iris")
    register_versions(
        tcdeploy_server.tracking_uri, tmp_path_factory.mktemp("artifacts"), name, tmp_path_factory.mktemp("code")
    )
    return name


@pytest.fixture(scope="module")
def server_env(tcdeploy_server):
    """The environment a user sets to reach the session server (restored after the module)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in (
            "KERNEL_WEDATA_CLOUD_SDK_SECRET_ID",
            "KERNEL_WEDATA_CLOUD_SDK_SECRET_KEY",
            "KERNEL_WEDATA_CLOUD_SDK_SECRET_TOKEN",
            "WEDATA_WORKSPACE_ID",
            "TCDEPLOY_DATA_DIR",
        ):
            patch.delenv(name, raising=False)
        for name, value in tcdeploy_server.client_env().items():
            patch.setenv(name, value)
        yield tcdeploy_server.client_env()


@pytest.fixture(scope="module")
def client(server_env, tcdeploy_server):
    from mlflow.deployments import get_deploy_client

    return get_deploy_client(tcdeploy_server.target)


@pytest.fixture(scope="session")
def logistic_predictions(registered_model, tcdeploy_server, iris) -> list:
    """What the registered logistic model itself predicts for the iris frame."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tcdeploy_server.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{registered_model}/1")
    finally:
        mlflow.set_tracking_uri(previous)
    return np.asarray(model.predict(iris[0])).tolist()
