"""Starting and signalling one replica process.

The child must die with the server even when the server is SIGKILLed, so it asks the kernel for
PR_SET_PDEATHSIG=SIGKILL. That is done by a tiny wrapper (`python -c _WRAPPER`) that calls prctl and
then execs the replica in the same pid, rather than by `preexec_fn`: code run between fork and exec
in a process with threads (the server has some) can deadlock, and the docs warn against it. The
wrapper also exits if the server died before prctl took effect (its parent is no longer the server).
The kernel sends the signal when the *thread* that forked the child ends: asyncio forks from the
event loop's thread, so the loop must run for as long as the replicas should (as a server's does).

Each replica leads its own session (process group), so stopping it reaches anything it forked, and
a Ctrl-C on the server's terminal reaches the server only (which then stops replicas gracefully).
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from tcdeploy.server.runtime.paths import REPLICA_MODULE
from tcdeploy.server.runtime.spec import ReplicaSpec

_WRAPPER = """\
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
if hasattr(libc, "prctl"):
    PR_SET_PDEATHSIG = 1
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        sys.exit("tcdeploy: prctl(PR_SET_PDEATHSIG) failed: " + os.strerror(ctypes.get_errno()))
if os.getppid() != int(sys.argv[1]):
    sys.exit("tcdeploy: the server exited before the replica started")
os.execv(sys.argv[2], sys.argv[2:])
"""

# Numeric libraries start one thread per core by default; N replicas on one box would oversubscribe.
THREAD_HINTS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def replica_argv(python: str, spec: ReplicaSpec, socket_path: Path) -> list[str]:
    """The replica command line (the contract of `tcdeploy.server.replica`)."""
    return [
        python,
        "-m",
        REPLICA_MODULE,
        "--model-uri",
        spec.model_uri,
        "--uds",
        str(socket_path),
        "--max-batch-size",
        str(spec.max_batch_size),
        "--max-batch-wait-ms",
        repr(float(spec.max_batch_wait_ms)),
        "--pod-name",
        spec.pod_name,
        "--hang-after-s",
        repr(float(spec.hang_after_s)),
        *(("--tcp", spec.tcp) if spec.tcp else ()),
    ]


# What a replica takes from the server's environment: what any process needs (paths, locale,
# time zone, temp dir), how to reach MLflow's stores and the network (MLflow's settings, the
# artifact stores' credentials, proxies, CA bundles) and which devices it may use. Nothing else:
# a replica runs the model's own code, and the server's environment may hold keys of its own.
PASSED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "GOOGLE_APPLICATION_CREDENTIALS", "CUDA_VISIBLE_DEVICES",
})  # fmt: skip
PASSED_PREFIXES = ("LC_", "MLFLOW_", "AWS_", "AZURE_STORAGE_", "DATABRICKS_", "HF_", "COS_")


def passed_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` a replica gets (see PASSED_NAMES)."""
    return {name: value for name, value in environ.items() if name in PASSED_NAMES or name.startswith(PASSED_PREFIXES)}


def replica_env(spec: ReplicaSpec, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The replica's environment: the allow-listed part of the server's, the thread hints of its
    size, and its service's own `Env` (checked by the control plane)."""
    env = passed_env(os.environ if base is None else base)
    threads = str(max(1, math.ceil(spec.cpu_millicores / 1000)))
    env.update({name: threads for name in THREAD_HINTS})
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach us as they are printed, not at exit
    # `python -m` puts the working directory first on sys.path; a stray `mlflow/` there would be
    # imported instead of the real one. Python >= 3.11 honours this; older ones ignore it.
    env["PYTHONSAFEPATH"] = "1"
    env.update(spec.env)
    return env


async def spawn(python: str, spec: ReplicaSpec, socket_path: Path) -> asyncio.subprocess.Process:
    """Start the replica with stdout/stderr piped; it is its own process group leader."""
    return await spawn_tied(python, replica_argv(python, spec, socket_path), replica_env(spec))


async def spawn_tied(python: str, argv: list[str], env: Mapping[str, str]) -> asyncio.subprocess.Process:
    """Start `argv` tied to the server (it dies with it), leading its own session, stdout and
    stderr piped: a replica, or the fork server of a model's replicas."""
    return await asyncio.create_subprocess_exec(
        # -I -S: the wrapper needs only the standard library, never the working directory's files.
        python,
        "-I",
        "-S",
        "-c",
        _WRAPPER,
        str(os.getpid()),
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        start_new_session=True,
    )


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the replica's process group (its pgid is its pid); a gone group is fine."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"
