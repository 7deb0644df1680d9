"""Fixtures for the resilience tests: the sentinel model and real servers that are always stopped."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.cloudapi import common_client
from tests.support.server import start_server

from .resilience_helpers import kill_replicas, save_sentinel_model


@pytest.fixture(scope="session")
def sentinel_model_dir(tmp_path_factory) -> Path:
    """Answers 7 for every row; a row starting with 666 kills its replica (see sentinel_model.py)."""
    return save_sentinel_model(tmp_path_factory.mktemp("models") / "sentinel")


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory):
    """One server for the tests that neither stop nor kill it; each uses a group of its own."""
    server = start_server(tmp_path_factory.mktemp("resilience") / "data")
    try:
        yield server
    finally:
        server.stop(signal.SIGTERM)
        kill_replicas(server.data_dir)


@pytest.fixture(scope="session")
def wedata(shared_server):
    return common_client(shared_server, "wedata")


@pytest.fixture(scope="session")
def tione(shared_server):
    return common_client(shared_server, "tione")


@pytest.fixture
def own_server(tmp_path):
    """A server of the test's own, for tests that stop, kill or restart it."""
    server = start_server(tmp_path / "data")
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)
        kill_replicas(server.data_dir)
