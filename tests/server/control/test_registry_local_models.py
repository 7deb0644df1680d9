"""A model on the server's own disk is read in place: the server process pays for importing MLflow
(tens of MiB) only when it talks to a registry or a remote store."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import asyncio, sys
from tcdeploy.server.control.backend.registry import ModelRegistry
registry = ModelRegistry("sqlite:///unused.db")
mlmodel = asyncio.run(registry.mlmodel(sys.argv[1]))
print(sorted(mlmodel["flavors"]), "mlflow" in sys.modules)
"""


def test_a_local_models_mlmodel_is_read_without_importing_mlflow(logistic_model_dir, tmp_path):
    for uri in (str(logistic_model_dir), f"file://{logistic_model_dir}"):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, uri], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
        ).stdout.split("\n")[-2]
        assert out == "['python_function', 'sklearn'] False", out


def test_a_local_path_without_an_mlmodel_file_reads_as_none(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE.replace('sorted(mlmodel["flavors"])', "mlmodel"), str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    ).stdout.strip()  # fmt: skip
    assert out == "None False", out
