"""Fixtures of the gateway's tests; the harness itself is in gateway_harness.py."""

from __future__ import annotations

import pytest

from .gateway_harness import ReplicaPool


@pytest.fixture
def anyio_backend():
    return "asyncio", {"use_uvloop": True}


@pytest.fixture
def replicas():
    """Replica processes started by the test, killed at its end."""
    pool = ReplicaPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def model_replicas(logistic_model_dir):
    """Two real replicas serving the logistic iris model, shared by every gateway test that
    does not stop them (starting one takes seconds)."""
    pool = ReplicaPool()
    try:
        yield pool.start_many(["ms-logit-0", "ms-logit-1"], logistic_model_dir)
    finally:
        pool.close()


@pytest.fixture(scope="session")
def standin():
    """One stand-in replica (no model) shared by the tests that need slow or odd replies."""
    pool = ReplicaPool()
    try:
        yield pool.start("ms-standin-0")
    finally:
        pool.close()
