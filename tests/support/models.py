"""Small real MLflow models for tests: trained here, saved the way the pinned MLflow accepts."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from tcdeploy.server.control.backend.registry import WORKSPACE_TAG

# MLflow >= 3.17 saves sklearn models with skops and refuses types it has not been told to trust.
TREE_TYPES = ["sklearn.tree._tree.Tree"]


def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def save_sklearn(model, path: Path, X: pd.DataFrame, trusted_types: list[str] | None = None) -> Path:
    """Save a fitted sklearn model as an MLflow model directory with a signature."""
    signature = infer_signature(X, model.predict(X))
    mlflow.sklearn.save_model(model, str(path), signature=signature, skops_trusted_types=trusted_types)
    return path


def train_logistic(path: Path, max_iter: int = 200) -> Path:
    X, y = iris_frame()
    model = LogisticRegression(max_iter=max_iter).fit(X, y)
    return save_sklearn(model, path, X)


def train_forest(path: Path, n_estimators: int = 10, seed: int = 0) -> Path:
    X, y = iris_frame()
    model = RandomForestClassifier(n_estimators=n_estimators, random_state=seed).fit(X, y)
    return save_sklearn(model, path, X, trusted_types=TREE_TYPES)


def register_model(tracking_uri: str, name: str, kind: str = "logistic", workspace: str | None = None) -> str:
    """Log a freshly trained model to the registry at `tracking_uri` as a new version of `name`;
    with `workspace`, the registered model is tagged as that workspace's (untagged, it is the
    default workspace's: the server's registry is partitioned by workspace)."""
    import mlflow

    X, y = iris_frame()
    if kind == "forest":
        model, trusted = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y), TREE_TYPES
    else:
        model, trusted = LogisticRegression(max_iter=200).fit(X, y), None
    previous = mlflow.get_tracking_uri()
    previous_experiment = os.environ.get("MLFLOW_EXPERIMENT_ID")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        # Artifacts beside the registry's database, not in ./mlruns of whatever directory runs tests.
        mlflow.set_experiment(experiment_id=_experiment_beside(tracking_uri))
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=name,
                signature=infer_signature(X, model.predict(X)),
                skops_trusted_types=trusted,
            )
        if workspace is not None:
            mlflow.MlflowClient(tracking_uri).set_registered_model_tag(name, WORKSPACE_TAG, workspace)
        return str(info.registered_model_version)
    finally:
        mlflow.set_tracking_uri(previous)
        # set_experiment exports MLFLOW_EXPERIMENT_ID; a later child process (the docs test's
        # quickstart) with another registry must not inherit it.
        if previous_experiment is None:
            os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        else:
            os.environ["MLFLOW_EXPERIMENT_ID"] = previous_experiment


def _experiment_beside(tracking_uri: str) -> str:
    import mlflow

    root = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
    found = mlflow.get_experiment_by_name("tcdeploy-tests")
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment("tcdeploy-tests", artifact_location=root.as_uri())
