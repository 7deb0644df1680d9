"""The plugin works with the MLflow WeData notebooks have: mlflow-skinny 3.10 and the oldest SDK
we allow, in a venv of their own, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-compat"
OLDEST = ["mlflow-skinny==3.10.1", "tencentcloud-sdk-python-common==3.0.1300"]


@pytest.fixture(scope="module")
def compat_python() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != "\n".join(OLDEST):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *OLDEST], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=True)
        stamp.write_text("\n".join(OLDEST))
    return python


def test_the_plugin_works_on_mlflow_skinny_3_10(compat_python, tcdeploy_server, logistic_model_dir):
    version = subprocess.run(
        [str(compat_python), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version.startswith("3.10"), version
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, **tcdeploy_server.client_env()}
    done = subprocess.run(
        [
            str(compat_python),
            str(Path(__file__).with_name("compat_smoke.py")),
            tcdeploy_server.target,
            str(logistic_model_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "COMPAT OK 3.10" in done.stdout
