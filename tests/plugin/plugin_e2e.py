"""Helpers for the plugin's end-to-end tests (imported by conftest and the test modules)."""

from __future__ import annotations

import textwrap
import time
import uuid
from pathlib import Path

import numpy as np

from tests.support import models

CONSTANT = 7  # what the constant model answers for every row; the logistic model says 0, 1 or 2

CONSTANT_MODEL_CODE = textwrap.dedent(f"""
    import mlflow
    from mlflow.pyfunc import PythonModel


    class Constant(PythonModel):
        def predict(self, context, model_input, params=None):
            return [{CONSTANT}] * len(model_input)


    mlflow.models.set_model(Constant())
""")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def register_versions(tracking_uri: str, artifacts: Path, name: str, code_dir: Path) -> None:
    """Version 1 of ``name``: logistic regression on iris; version 2: the constant model."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    X, y = models.iris_frame()
    logistic = LogisticRegression(max_iter=200).fit(X, y)
    code = code_dir / "constant_model.py"
    code.write_text(CONSTANT_MODEL_CODE)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        # Artifacts under the test's temporary dir, not ./mlruns in the working tree.
        experiment = mlflow.create_experiment(unique("plugin-e2e"), artifact_location=artifacts.as_uri())
        with mlflow.start_run(experiment_id=experiment):
            mlflow.sklearn.log_model(
                logistic, name="model", registered_model_name=name, signature=infer_signature(X, logistic.predict(X))
            )
        with mlflow.start_run(experiment_id=experiment):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=str(code),
                registered_model_name=name,
                signature=infer_signature(X, np.full(len(X), CONSTANT)),
            )
    finally:
        mlflow.set_tracking_uri(previous)


def wait_until(predicate, timeout: float = 120.0, interval: float = 0.5):
    """Poll ``predicate()`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
