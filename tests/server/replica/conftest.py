"""Fixtures for replica tests: real models served by real replica processes."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pytest
from mlflow.models import infer_signature

from .replica_harness import running_replica

MAGIC_MODEL_CODE = Path(__file__).with_name("replica_magic_model.py")


@pytest.fixture(scope="session")
def magic_model_dir(tmp_path_factory) -> Path:
    """A custom pyfunc model: raises on x == 666, returns a DataFrame, takes a `scale` param."""
    path = tmp_path_factory.mktemp("models") / "magic"
    example = pd.DataFrame({"x": [1.0, 2.0]})
    output = pd.DataFrame({"double": [2.0, 4.0], "scaled": [1.0, 2.0]})
    signature = infer_signature(example, output, params={"scale": 1.0, "sleep_s": 0.0})
    mlflow.pyfunc.save_model(str(path), python_model=str(MAGIC_MODEL_CODE), signature=signature, input_example=example)
    return path


@pytest.fixture(scope="module")
def forest_replica(forest_model_dir, tmp_path_factory):
    """The forest model served over a unix socket, as the gateway reaches replicas."""
    log_dir = tmp_path_factory.mktemp("forest-replica")
    # A small row cap, so the tests see it hold (the default is far above what they send).
    with running_replica(forest_model_dir, log_dir, "--pod-name", "ms-test-00001", "--max-batch-size", "32") as replica:
        yield replica


@pytest.fixture(scope="module")
def forest_model(forest_model_dir):
    return mlflow.pyfunc.load_model(str(forest_model_dir))
