"""The README's quickstart, then its tccli block, run as written against a local server (only the
port differs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.server import start_server

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def tccli_block(text: str) -> str:
    return next(b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "tccli tione" in b)


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without any credentials or registry of its own; the venv's tools
    (python, tccli) first on PATH; a HOME of the test's own (tccli keeps its settings there)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TENCENTCLOUD_", "KERNEL_WEDATA_", "MLFLOW_TRACKING_URI"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")
    return env


def test_the_quickstart_and_the_tccli_block_run_as_written(tmp_path):
    text = README.read_text()
    server = start_server(tmp_path / ".tcdeploy")
    here = f"127.0.0.1:{server.port}"
    env = clean_env(tmp_path)
    try:
        script = tmp_path / "quickstart.py"
        script.write_text(python_blocks(text)[0].replace("127.0.0.1:8600", here) + "\nprint('QUICKSTART OK')\n")
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "QUICKSTART OK" in done.stdout
        # The tccli block uses the model the quickstart registered, as a reader's second step would.
        shell = "set -euo pipefail\n" + tccli_block(text).replace("127.0.0.1:8600", here) + "echo TCCLI OK\n"
        done = subprocess.run(["bash", "-c", shell], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert '"Normal"' in done.stdout and "/predict" in done.stdout and "TCCLI OK" in done.stdout
    finally:
        server.stop()
