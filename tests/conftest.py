"""Fixtures shared by every test folder: small real models, trained once per session."""
from __future__ import annotations

from pathlib import Path

import pytest

from support import models


@pytest.fixture(scope="session")
def iris():
    return models.iris_frame()


@pytest.fixture(scope="session")
def logistic_model_dir(tmp_path_factory) -> Path:
    """An MLflow model directory: LogisticRegression on iris, with a signature."""
    return models.train_logistic(tmp_path_factory.mktemp("models") / "logistic")


@pytest.fixture(scope="session")
def forest_model_dir(tmp_path_factory) -> Path:
    """An MLflow model directory: a small RandomForest on iris (skops with trusted types)."""
    return models.train_forest(tmp_path_factory.mktemp("models") / "forest")
