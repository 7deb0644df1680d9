"""The README walked top to bottom as written, against a local server (only the port differs):
install, server, the Python quickstart, the shell quickstart (list, predict with a request file,
curl with the token), then the tccli block, in one shell as a reader would run them.

The install step runs `make venv` in this checkout: on a fresh clone (CI) that is the install
itself, here it finds the `.venv` already built and reuses it rather than pip-installing again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import start_server

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEFAULT = "127.0.0.1:8600"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def bash_block(text: str, marker: str) -> str:
    return next(b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if marker in b)


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without any credentials or registry of its own; the venv's tools
    (python, tccli) first on PATH; a HOME of the test's own (tccli keeps its settings there)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TENCENTCLOUD_", "KERNEL_WEDATA_", "MLFLOW_TRACKING_URI", "TCDEPLOY_DATA_DIR"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")
    return env


def run_bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout + done.stderr


def test_the_install_block_gives_the_tools_the_rest_uses(tmp_path):
    install = bash_block(README.read_text(), "make venv")
    steps = [line for line in install.splitlines() if not line.startswith("tcdeploy server")]
    assert len(steps) < len(install.splitlines()), "the install block starts the server"
    out = run_bash("\n".join(steps) + "\ncommand -v tcdeploy mlflow\ntcdeploy --help\n", ROOT, clean_env(tmp_path))
    assert f"{ROOT}/.venv/bin/tcdeploy" in out and f"{ROOT}/.venv/bin/mlflow" in out
    assert "token" in out and "server" in out


@pytest.mark.timeout(900)  # three deployments and a dozen CLI start-ups: minutes on a loaded machine
def test_the_quickstarts_curl_and_tccli_run_as_written(tmp_path):
    text = README.read_text()
    server = start_server(tmp_path / ".tcdeploy")
    here = f"127.0.0.1:{server.port}"
    env = clean_env(tmp_path)
    try:
        script = tmp_path / "quickstart.py"
        script.write_text(python_blocks(text)[0].replace(DEFAULT, here) + "\nprint('QUICKSTART OK')\n")
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "QUICKSTART OK" in done.stdout
        assert "with its deployments: iris, iris-v2" in done.stderr  # delete_endpoint says what goes
        # The shell quickstart, then the tccli block (using the model the quickstart registered),
        # in one shell: the second reads the variables the first exported.
        shell = bash_block(text, "mlflow deployments create") + "echo SHELL OK\n" + bash_block(text, "tccli tione")
        out = run_bash(shell.replace(DEFAULT, here) + "echo TCCLI OK\n", tmp_path, env)
        assert "SHELL OK" in out and "TCCLI OK" in out
        assert "'status': 'RUNNING', 'replicas': 2, 'ready_replicas': 2" in out  # the list line
        # mlflow deployments predict, then curl with the token
        assert len(re.findall(r'\{"predictions": ?\[0, ?2\]\}', out)) == 2, out[-4000:]
        assert '"Normal"' in out and "/predict" in out
    finally:
        server.stop()
    assert (tmp_path / "mlruns").is_dir()  # what the README says `make clean` removes
