"""Fixtures shared by every test folder: small real models, trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import models


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


@pytest.fixture(scope="session")
def tcdeploy_server(tmp_path_factory):
    """One real `tcdeploy server` for the session (tests that kill or restart it start their own)."""
    from tests.support.server import start_server

    server = start_server(tmp_path_factory.mktemp("server") / "data")
    try:
        yield server
    finally:
        server.stop()
