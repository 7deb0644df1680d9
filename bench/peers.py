"""The peers under test beside ours: MLServer (with mlserver-mlflow, at its defaults and with
adaptive batching on its V2 endpoint) and BentoML (a batchable API), each installed by the bench
into a venv of its own and started like `servers.mlflow_serve`: a context manager that yields a
`Target` and always stops it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

from benchmodel import COLUMNS
from procs import PeakRssSampler, free_port, start_process, stop_process
from servers import Target, wait_first_prediction

from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS

PEERS_HOME = Path(os.environ.get("TCDEPLOY_BENCH_PEERS", Path.home() / ".cache" / "tcdeploy-bench" / "peers"))
# MLServer 1.7 only starts with uvloop 0.21 (0.23 crashes its inference worker). The model's own
# libraries are pinned to ours, so every server loads the same model with the same code.
_SAME_MODEL_LIBRARIES = ("mlflow==3.17.2", "scikit-learn==1.9.1")
PEER_REQUIREMENTS = {
    "mlserver": ("mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop==0.21.0", *_SAME_MODEL_LIBRARIES),
    "bentoml": ("bentoml==1.4.40", *_SAME_MODEL_LIBRARIES),
}
MODEL_NAME = "forest"
# MLServer's adaptive batching: up to one request per connection of the largest case, waiting as
# long as our replicas wait for a batch to fill (2 ms).
MLSERVER_MAX_BATCH_SIZE = 32
MLSERVER_MAX_BATCH_TIME_S = 0.002


def peer_python(peer: str) -> Path:
    """The Python of `peer`'s own venv, made (once per set of requirements) with pip."""
    requirements = PEER_REQUIREMENTS[peer]
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    venv = PEERS_HOME / f"{peer}-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".installed").exists():
        return python
    print(f"   installing {peer} into {venv} ({', '.join(requirements)})", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    (venv / ".installed").write_text("\n".join(requirements) + "\n")
    return python


def _peer_env(python: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = str(python.parent) + os.pathsep + env.get("PATH", "")
    return env


@contextlib.contextmanager
def mlserver_serve(model_dir: Path, workdir: Path, *, batching: bool, ready_timeout_s: float = 300) -> Iterator[Target]:
    """`mlserver start` on a folder with its settings: loopback, free ports, its default workers;
    with `batching`, adaptive batching on and the load sent to its V2 endpoint (its
    `/invocations` is never batched)."""
    python = peer_python("mlserver")
    name = "mlserver-batch" if batching else "mlserver"
    folder = workdir / name
    folder.mkdir(exist_ok=True)
    port = free_port()
    (folder / "settings.json").write_text(
        json.dumps({"host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port()})
    )
    model: dict = {
        "name": MODEL_NAME,
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": str(model_dir)},
    }
    if batching:
        model |= {"max_batch_size": MLSERVER_MAX_BATCH_SIZE, "max_batch_time": MLSERVER_MAX_BATCH_TIME_S}
    (folder / "model-settings.json").write_text(json.dumps(model))
    url = (
        f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer" if batching else f"http://127.0.0.1:{port}/invocations"
    )
    log_path = workdir / f"{name}.log"
    launched = time.monotonic()
    proc = start_process([str(python.parent / "mlserver"), "start", str(folder)], _peer_env(python), log_path)
    try:
        with PeakRssSampler(proc.pid) as memory:
            target = Target(name, url, "", proc.pid, memory, form="v2" if batching else "mlflow")
            wait_first_prediction(target, proc, launched, ready_timeout_s, log_path)
            target.notes.update({"log": str(log_path), "settings": model, "version": "mlserver 1.7.1"})
            yield target
    finally:
        stop_process(proc)


BENTO_SERVICE = """\
import os

import bentoml
import mlflow.pyfunc
import numpy as np
import pandas as pd

COLUMNS = {columns!r}


@bentoml.service
class Forest:
    def __init__(self) -> None:
        self.model = mlflow.pyfunc.load_model(os.environ["BENCH_MODEL_DIR"])

    @bentoml.api(batchable=True, max_batch_size={max_rows}, max_latency_ms=10000)
    def predict(self, data: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(pd.DataFrame(data, columns=COLUMNS)))
"""


@contextlib.contextmanager
def bentoml_serve(model_dir: Path, workdir: Path, ready_timeout_s: float = 300) -> Iterator[Target]:
    """`bentoml serve` of a service whose one API is batchable, with our row cap per batch
    (its default, 100 rows, would split every 100-row case's batches)."""
    python = peer_python("bentoml")
    folder = workdir / "bentoml"
    folder.mkdir(exist_ok=True)
    (folder / "service.py").write_text(
        textwrap.dedent(BENTO_SERVICE.format(columns=COLUMNS, max_rows=DEFAULT_MAX_BATCH_ROWS))
    )
    port = free_port()
    env = _peer_env(python) | {
        "BENCH_MODEL_DIR": str(model_dir),
        "BENTOML_HOME": str(folder / "home"),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    log_path = workdir / "bentoml.log"
    command = [str(python.parent / "bentoml"), "serve", "service:Forest", "--host", "127.0.0.1", "--port", str(port)]
    launched = time.monotonic()
    proc = start_process(command, env, log_path, cwd=folder)
    try:
        with PeakRssSampler(proc.pid) as memory:
            target = Target("bentoml", f"http://127.0.0.1:{port}/predict", "", proc.pid, memory, form="bentoml")
            wait_first_prediction(target, proc, launched, ready_timeout_s, log_path)
            target.notes.update(
                {"log": str(log_path), "max_batch_size": DEFAULT_MAX_BATCH_ROWS, "version": "bentoml 1.4.40"}
            )
            yield target
    finally:
        stop_process(proc)
