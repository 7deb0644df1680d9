"""`python -m tcdeploy.server.replica.zygote`: a fork server for the replicas of one model.

It imports what a replica needs (MLflow, the flavor's library, uvicorn), loads the model once and
then forks replicas on demand; a forked replica shares those pages with it copy-on-write and is
serving in a fraction of a second instead of the seconds a cold start spends importing and loading.

Fork is only safe from a process with one thread: the runtime starts the zygote with every
numeric library's thread count at 1 (no BLAS/OpenMP pool before the fork), nothing here starts a
thread, logging has no handler threads and no event loop runs. The zygote checks that it has one
thread before listening (else it exits with `EXIT_THREADED` and the runtime starts replicas cold).

The contract with the runtime (`runtime/forkserver.py`), over the unix socket `--control`:

- When the model is loaded and the socket listens, the zygote prints `READY_LINE` on stdout.
- One connection per replica. The runtime sends one JSON message, `{"argv": [...], "env": {...}}`
  (the arguments of `python -m tcdeploy.server.replica` and the replica's environment), with two
  file descriptors attached (SCM_RIGHTS): the replica's stdout and stderr. The `--model-uri` of
  `argv` must be the zygote's.
- The zygote answers `{"pid": N}` and a newline once forked, and `{"exit": code}` and a newline
  when that replica has exited (the code as asyncio reports it: negative for a signal), then
  closes; or `{"error": "..."}` when it refuses.
- The runtime closing its end means nobody supervises that replica: the zygote kills it.

Each replica leads its own session (so the runtime signals its group by its pid, as for a cold
one), asks for SIGKILL when the zygote dies (PR_SET_PDEATHSIG: a dead zygote takes its replicas
with it, and the runtime restarts them), gets fresh random seeds and its own sockets, and applies
its own thread counts from its environment.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import random
import selectors
import signal
import socket
import sys
import time
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

READY_LINE = "zygote ready"
EXIT_MODEL_LOAD_FAILED = 3
EXIT_THREADED = 5
_MAX_REQUEST_BYTES = 1 << 16
_PR_SET_PDEATHSIG = 1
# The environment variables a replica takes its thread counts from (set to 1 in the zygote).
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tcdeploy.server.replica.zygote", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--control", required=True, help="the unix socket to take fork requests on")
    parser.add_argument("--room", default="", help="filler: room for each replica's own command line")
    args = parser.parse_args(argv)
    started = time.monotonic()
    model = _preload(args.model_uri)
    if model is None:
        return EXIT_MODEL_LOAD_FAILED
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        print(f"cannot fork replicas: {threads} threads run after loading the model", file=sys.stderr, flush=True)
        return EXIT_THREADED
    # Objects alive now are never collected: the collector won't touch (and so copy) their pages.
    gc.collect()
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(args.control):
        os.unlink(args.control)
    listener.bind(args.control)
    listener.listen(64)
    print(READY_LINE, flush=True)
    return _Zygote(listener, model, args.model_uri, time.monotonic() - started).run()


def _preload(model_uri: str) -> PyFuncModel | None:
    """Import everything a replica runs and load the model; None (reason on stderr) if it fails."""
    import httptools  # noqa: F401  (uvicorn imports these lazily, at serve time: do it once here)
    import uvloop  # noqa: F401

    from tcdeploy.server.replica import __main__ as _entry  # noqa: F401
    from tcdeploy.server.replica.server import ModelLoadError, load_model

    try:
        return load_model(model_uri)
    except ModelLoadError as exc:
        print(exc, file=sys.stderr, flush=True)
        return None


class _Zygote:
    """The fork loop: one thread, a selector over the listener, each replica's connection and a
    wake-up pipe for SIGCHLD."""

    def __init__(self, listener: socket.socket, model: PyFuncModel, model_uri: str, load_s: float) -> None:
        self._load_s = load_s
        self._listener = listener
        self._model = model
        self._model_uri = model_uri
        self._selector = selectors.DefaultSelector()
        self._children: dict[int, socket.socket] = {}
        self._pid = os.getpid()

    def run(self) -> int:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(wake_write)
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(wake_read, selectors.EVENT_READ, "reap")
        while True:
            for key, _ in self._selector.select():
                if key.data == "accept":
                    self._accept()
                elif key.data == "reap":
                    while _drain(wake_read):
                        pass
                    self._reap()
                else:
                    self._abandoned(key.data)

    def _accept(self) -> None:
        conn, _ = self._listener.accept()
        fds: list[int] = []
        try:
            conn.settimeout(5.0)
            message, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST_BYTES, 2)
            request = json.loads(message)
            argv, env = request["argv"], request["env"]
            refusal = self._refusal(argv, env, fds)
            if refusal:
                _send(conn, {"error": refusal})
                conn.close()
                return
            self._fork(conn, argv, env, fds)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            with contextlib.suppress(OSError):  # a runtime gone away is not our problem
                _send(conn, {"error": f"bad fork request: {exc}"})
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def _refusal(self, argv: object, env: object, fds: list[int]) -> str | None:
        if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
            return "argv: must be a list of strings"
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            return "env: must map strings to strings"
        if len(fds) != 2:
            return f"expected 2 file descriptors (stdout, stderr), got {len(fds)}"
        if "--model-uri" not in argv or argv[argv.index("--model-uri") + 1 :][:1] != [self._model_uri]:
            return f"this zygote serves {self._model_uri!r} only"
        return None

    def _fork(self, conn: socket.socket, argv: list[str], env: dict[str, str], fds: list[int]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = self._become_replica(argv, env, fds)
            except BaseException:
                traceback.print_exc()
            finally:
                from tcdeploy.server.replica.__main__ import _exit_now

                _exit_now(code)
        self._children[pid] = conn
        conn.setblocking(True)
        self._selector.register(conn, selectors.EVENT_READ, pid)
        _send(conn, {"pid": pid})

    def _become_replica(self, argv: list[str], env: dict[str, str], fds: list[int]) -> int:
        """In the child: leave the zygote behind and serve as `python -m tcdeploy.server.replica`."""
        os.setsid()
        _die_with(self._pid)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        self._selector.close()
        self._listener.close()
        for conn in self._children.values():
            conn.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        os.close(devnull)
        os.environ.update(env)
        _apply_thread_counts(env)
        _reseed()
        _show_command_line([sys.executable, "-m", "tcdeploy.server.replica", *argv])
        print(f"forked from the zygote (pid {self._pid}), which loaded the model in {self._load_s:.2f}s", flush=True)
        from tcdeploy.server.replica.__main__ import main as serve_replica

        return serve_replica(argv, model=self._model)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self._children.pop(pid, None)
            if conn is not None:
                self._selector.unregister(conn)
                with contextlib.suppress(OSError):  # a runtime gone away is not our problem
                    _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                conn.close()

    def _abandoned(self, pid: int) -> None:
        """The runtime closed a replica's connection (or wrote to it, which it never does)."""
        conn = self._children.get(pid)
        if conn is None:
            return
        self._selector.unregister(conn)
        with contextlib.suppress(OSError):  # a runtime gone away is not our problem
            os.killpg(pid, signal.SIGKILL)
        # The exit is still reaped (and the connection closed) by `_reap`.


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def _die_with(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the zygote died before prctl took effect
        os._exit(1)


def _show_command_line(argv: list[str]) -> None:
    """Show the replica's command line, as a cold one's, in /proc/<pid>/cmdline (what `ps`, the
    orphan reaper and the tests identify replicas by): written over the zygote's own arguments
    (the runtime gives it room with `--room`), the setproctitle way: space-separated, ending in a
    NUL, the area's last byte not NUL. Skipped if it does not fit."""
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48 and 49
    title = " ".join(argv).encode() + b"\0"
    if len(title) >= end - start:
        return
    with open("/proc/self/mem", "r+b", buffering=0) as memory:
        memory.seek(start)
        memory.write(title + b" " * (end - start - len(title)))


def _apply_thread_counts(env: dict[str, str]) -> None:
    """The replica's own thread counts, where the zygote ran with one thread per library."""
    wanted = next((env[name] for name in _THREAD_VARIABLES if env.get(name, "").isdigit()), None)
    if wanted is None or int(wanted) <= 1:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=int(wanted))


def _reseed() -> None:
    """Fresh random state: every replica forked from one zygote would otherwise draw the same."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


if __name__ == "__main__":
    sys.exit(main())
