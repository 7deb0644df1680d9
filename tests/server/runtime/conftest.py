"""Fixtures for the runtime tests: a runtime that always cleans up, and a model that cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcdeploy.server.runtime import LocalRuntime

from .runtime_helpers import FAST_BACKOFF, Recorder, replica_processes, save_code_model


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def runtime(tmp_path, recorder):
    """A LocalRuntime with fast backoff; closed afterwards, and no replica outlives the test."""
    rt = LocalRuntime(tmp_path / "data", recorder, backoff=FAST_BACKOFF, crash_loop_window=30.0, watch_interval=0.25)
    try:
        yield rt
    finally:
        await rt.close(grace=5)
        for proc in replica_processes():  # the safety net, if close() itself was broken
            proc.kill()


@pytest.fixture(scope="session")
def broken_model_dir(tmp_path_factory) -> Path:
    """A valid MLflow model whose load_context raises: it can never load."""
    return save_code_model(
        tmp_path_factory.mktemp("models") / "broken",
        """
        import mlflow
        from mlflow.pyfunc import PythonModel

        class Broken(PythonModel):
            def load_context(self, context):
                raise RuntimeError("this model is broken on purpose")

            def predict(self, context, model_input: list[str], params=None) -> list[str]:
                return model_input

        mlflow.models.set_model(Broken())
    """,
    )
