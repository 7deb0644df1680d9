"""Replicas forked from a zygote (runtime/forkserver.py): real zygotes, real forked replicas."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal

import httpx
import psutil
import pytest

from tcdeploy.server.runtime import LocalRuntime
from tcdeploy.server.runtime.forkserver import ZYGOTE_MODULE
from tcdeploy.server.runtime.paths import REPLICA_MODULE

from .runtime_helpers import FAST_BACKOFF, LOAD_TIMEOUT, alive, eventually, save_code_model, spec

pytestmark = pytest.mark.anyio

IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
# Every input form, and bad input of several kinds: a forked replica must answer each byte for byte
# as a cold one does.
BODIES = [
    {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}},
    {"dataframe_records": [dict(zip(IRIS_COLUMNS, [5.9, 3.0, 4.2, 1.5]))]},
    {"instances": [dict(zip(IRIS_COLUMNS, [6.3, 3.3, 6.0, 2.5]))]},
    {"inputs": {name: [1.0, 2.0] for name in IRIS_COLUMNS}},
    {"client_request_id": "r-1", "dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.0, 3.4, 1.5, 0.2]]}},
    {"dataframe_split": {"columns": IRIS_COLUMNS[:3], "data": [[5.1, 3.5, 1.4]]}},
    {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [["a", 3.5, 1.4, 0.2]]}},
    {"nothing": []},
]


async def _post(address: str, body: bytes | dict, path: str = "/invocations") -> tuple[int, bytes]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=address), timeout=30) as client:
        reply = await client.post(
            f"http://replica{path}", content=content, headers={"content-type": "application/json"}
        )
    return reply.status_code, reply.content


async def _get(address: str, path: str) -> dict:
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=address), timeout=30) as client:
        return (await client.get(f"http://replica{path}")).json()


def _parent_cmdline(pid: int) -> list[str]:
    return psutil.Process(psutil.Process(pid).ppid()).cmdline()


def _zygote_of(pid: int) -> int:
    parent = psutil.Process(pid).ppid()
    assert ZYGOTE_MODULE in psutil.Process(parent).cmdline(), f"pid {pid} was not forked by a zygote"
    return parent


async def _ready(runtime: LocalRuntime, pod: str, *args, cpu_millicores: int = 1000, **kwargs):
    await runtime.start(dataclasses.replace(spec(pod, *args, **kwargs), cpu_millicores=cpu_millicores))
    state = await runtime.wait_ready(pod, LOAD_TIMEOUT)
    assert state.ready, state.message
    return state


@pytest.fixture
async def cold_runtime(tmp_path, recorder):
    rt = LocalRuntime(tmp_path / "cold", recorder, backoff=FAST_BACKOFF, fork_replicas=False)
    try:
        yield rt
    finally:
        await rt.close(grace=5)


async def test_forked_replicas_answer_exactly_as_a_cold_one(runtime, cold_runtime, logistic_model_dir):
    cold = await _ready(cold_runtime, "ms-cold-00001", logistic_model_dir)
    forked = [await _ready(runtime, f"ms-fork-0000{n}", logistic_model_dir) for n in (1, 2)]

    assert ZYGOTE_MODULE not in _parent_cmdline(cold.pid)
    for state in forked:  # what ps, the orphan reaper and the tests know a replica by
        cmdline = psutil.Process(state.pid).cmdline()
        assert cmdline[1:3] == ["-m", REPLICA_MODULE] and cmdline[cmdline.index("--pod-name") + 1] == state.pod_name
    assert _zygote_of(forked[0].pid) == _zygote_of(forked[1].pid), "one zygote for one model"
    for body in BODIES:
        expected = await _post(cold.address, body)
        for state in forked:
            assert await _post(state.address, body) == expected, body
    assert {status for status, _ in [await _post(cold.address, b) for b in BODIES]} == {200, 400}
    cold_version = await _get(cold.address, "/version")
    forked_version = await _get(forked[0].address, "/version")
    assert {**forked_version, "pod_name": None} == {**cold_version, "pod_name": None}
    assert forked_version["pod_name"] == "ms-fork-00001"


async def test_forked_replicas_get_their_own_random_state_and_thread_counts(runtime, tmp_path):
    model = save_code_model(
        tmp_path / "draws",
        """
        import os, random
        import mlflow
        import numpy as np
        from mlflow.pyfunc import PythonModel

        class Draws(PythonModel):
            def predict(self, context, model_input: list[str], params=None) -> list[str]:
                return [f"{random.random()} {np.random.rand()} {os.environ.get('OMP_NUM_THREADS')}"]

        mlflow.models.set_model(Draws())
        """,
    )
    replies = []
    for n in (1, 2):
        state = await _ready(runtime, f"ms-draw-0000{n}", model, cpu_millicores=2000)
        _zygote_of(state.pid)
        status, body = await _post(state.address, {"inputs": ["x"]})
        assert status == 200, body
        replies.append(json.loads(body)["predictions"][0].split())
    assert replies[0][0] != replies[1][0], "Python's random module drew the same in two replicas"
    assert replies[0][1] != replies[1][1], "numpy drew the same in two replicas"
    assert replies[0][2] == replies[1][2] == "2", "the replica's own thread count (2000 millicores), not the zygote's 1"


async def test_two_models_or_two_environments_never_share_a_zygote(runtime, logistic_model_dir, forest_model_dir):
    logistic = await _ready(runtime, "ms-model-00001", logistic_model_dir)
    forest = await _ready(runtime, "ms-model-00002", forest_model_dir)
    other_env = await _ready(runtime, "ms-model-00003", logistic_model_dir, env={"MODEL_FLAG": "on"})
    same = await _ready(runtime, "ms-model-00004", logistic_model_dir)

    zygotes = [_zygote_of(state.pid) for state in (logistic, forest, other_env, same)]
    assert len(set(zygotes[:3])) == 3, zygotes
    assert zygotes[3] == zygotes[0]
    assert "MODEL_FLAG" in psutil.Process(zygotes[2]).environ()
    assert "MODEL_FLAG" not in psutil.Process(zygotes[0]).environ()
    status, body = await _post(forest.address, BODIES[0])
    assert status == 200 and len(json.loads(body)["predictions"]) == 2

    for pod in ("ms-model-00002", "ms-model-00003"):
        await runtime.stop(pod, grace=5)
    await eventually(lambda: not alive(zygotes[1]) and not alive(zygotes[2]), 10, "the unused zygotes stopped")
    assert alive(zygotes[0]), "the zygote still forking for a running replica stays"


async def test_a_dead_zygote_is_replaced_and_its_replicas_restarted(runtime, recorder, logistic_model_dir):
    pods = ["ms-zdie-00001", "ms-zdie-00002"]
    before = [await _ready(runtime, pod, logistic_model_dir) for pod in pods]
    zygote = _zygote_of(before[0].pid)

    os.kill(zygote, signal.SIGKILL)
    for pod, old in zip(pods, before):
        await recorder.until(lambda s, pod=pod: s.pod_name == pod and s.restart_count >= 1 and s.ready)
        state = runtime.state(pod)
        assert state.pid != old.pid and state.ready
        assert not alive(old.pid), "a replica of the dead zygote lives on beside its replacement"
        assert _zygote_of(state.pid) != zygote
        status, _ = await _post(state.address, BODIES[0])
        assert status == 200
    assert _zygote_of(runtime.state(pods[0]).pid) == _zygote_of(runtime.state(pods[1]).pid)


async def test_a_forked_replica_that_grows_past_its_memory_limit_is_oom_killed(runtime, recorder, tmp_path):
    model = save_code_model(
        tmp_path / "hog",
        """
        import mlflow
        from mlflow.pyfunc import PythonModel

        HELD = []

        class Hog(PythonModel):
            def predict(self, context, model_input: list[str], params=None) -> list[str]:
                HELD.append(bytearray(64 * 2**20))  # 64 MiB, touched: resident
                return ["held"]

        mlflow.models.set_model(Hog())
        """,
    )
    # Find how much a forked replica of it takes at rest, then give it room for two predicts.
    probe = await _ready(runtime, "ms-hog-00001", model)
    rss = psutil.Process(probe.pid).memory_info().rss
    await runtime.stop("ms-hog-00001", grace=5)
    pod = "ms-hog-00002"
    state = await _ready(runtime, pod, model, memory_mb=rss // 2**20 + 100)
    _zygote_of(state.pid)
    for _ in range(4):
        if not runtime.state(pod).ready:
            break
        with contextlib.suppress(httpx.HTTPError):  # killed while it answers
            await _post(state.address, {"inputs": ["x"]})
        await asyncio.sleep(0.6)  # the watcher samples every 0.25 s
    oom = await recorder.until(lambda s: s.pod_name == pod and s.reason == "OOMKilled", timeout=30)
    assert "OOMKilled" in oom.message and not oom.ready
    await recorder.until(lambda s: s.pod_name == pod and s.ready and s.restart_count >= 1)


async def test_a_model_that_starts_a_thread_at_load_runs_cold(runtime, tmp_path):
    model = save_code_model(
        tmp_path / "threaded",
        """
        import threading, time
        import mlflow
        from mlflow.pyfunc import PythonModel

        class Threaded(PythonModel):
            def load_context(self, context):
                threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()

            def predict(self, context, model_input: list[str], params=None) -> list[str]:
                return model_input

        mlflow.models.set_model(Threaded())
        """,
    )
    state = await _ready(runtime, "ms-thread-00001", model)
    assert ZYGOTE_MODULE not in _parent_cmdline(state.pid), "forked from a zygote that had a thread"
    assert await _post(state.address, {"inputs": ["a"]}) == (200, b'{"predictions": ["a"]}')


async def test_a_model_saved_again_at_its_path_gets_a_new_zygote(runtime, tmp_path):
    def save(answer: str):
        shutil.rmtree(tmp_path / "same", ignore_errors=True)
        return save_code_model(
            tmp_path / "same",
            f"""
            import mlflow
            from mlflow.pyfunc import PythonModel

            class Answer(PythonModel):
                def predict(self, context, model_input: list[str], params=None) -> list[str]:
                    return ["{answer}"]

            mlflow.models.set_model(Answer())
            """,
        )

    model = save("first")
    old = await _ready(runtime, "ms-same-00001", model)
    save("second")
    new = await _ready(runtime, "ms-same-00002", model)

    assert _zygote_of(new.pid) != _zygote_of(old.pid)
    assert await _post(new.address, {"inputs": ["x"]}) == (200, b'{"predictions": ["second"]}')
    assert await _post(old.address, {"inputs": ["x"]}) == (200, b'{"predictions": ["first"]}')
