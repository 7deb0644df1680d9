"""One server for the security tests: workspaces team-a, team-b and fuzz, a key limited to each
(see security_estate), and what the property tests add to it."""

from __future__ import annotations

import httpx
import pytest

from .security_estate import WORKSPACE_FUZZ, Estate, build_estate


@pytest.fixture(scope="session")
def estate(tmp_path_factory, logistic_model_dir) -> Estate:
    built = build_estate(tmp_path_factory.mktemp("security") / "data", logistic_model_dir)
    try:
        yield built
    finally:
        built.server.stop()


@pytest.fixture(scope="session")
def registered_model(estate) -> str:
    """A model in the server's registry, so ListModelVersions and Name/Version get past the lookup."""
    from tests.support.models import register_model

    register_model(estate.server.tracking_uri, "fuzzmodel", workspace=WORKSPACE_FUZZ)
    return "fuzzmodel"


@pytest.fixture(scope="session")
def http():
    with httpx.Client(timeout=120) as client:
        yield client
