"""The README's quickstart runs as written against a local server (only the port differs)."""

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


def test_the_quickstart_runs_as_written(tmp_path):
    quickstart = python_blocks(README.read_text())[0]
    server = start_server(tmp_path / ".tcdeploy")
    try:
        script = tmp_path / "quickstart.py"
        script.write_text(
            quickstart.replace("127.0.0.1:8600", f"127.0.0.1:{server.port}") + "\nprint('QUICKSTART OK')\n"
        )
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TENCENTCLOUD_", "KERNEL_WEDATA_", "MLFLOW_TRACKING_URI"))
        }
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "QUICKSTART OK" in done.stdout
    finally:
        server.stop()
