"""The README's LLM-service block, run as written against the session server (only the port
differs): a ChatModel logged and registered, deployed, and streamed with the openai client."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.deployments import get_deploy_client

README = Path(__file__).resolve().parents[3] / "README.md"


def chat_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return next(block for block in blocks if "from openai import OpenAI" in block)


def test_the_readmes_chat_block_streams_as_written(tcdeploy_server, tmp_path):
    script = tmp_path / "chat.py"
    script.write_text(chat_block().replace("127.0.0.1:8600", f"127.0.0.1:{tcdeploy_server.port}"))
    env = {**tcdeploy_server.client_env(), "MLFLOW_TRACKING_URI": tcdeploy_server.tracking_uri, "PATH": "/usr/bin:/bin"}
    try:
        ran = subprocess.run(
            [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240
        )
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert ran.stdout.strip().endswith("tokens arrive one by one")
    finally:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in tcdeploy_server.client_env().items():
                patch.setenv(name, value)
            get_deploy_client(tcdeploy_server.target).delete_endpoint("chat")
