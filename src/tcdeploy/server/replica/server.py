"""Load a model and serve it with uvicorn until SIGTERM/SIGINT, then drain and return."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator

import mlflow.pyfunc
import uvicorn
from mlflow.environment_variables import _MLFLOW_IS_IN_SERVING_ENVIRONMENT
from mlflow.pyfunc import PyFuncModel

from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS
from tcdeploy.server.replica.app import DEFAULT_HANG_AFTER_S, DEFAULT_MAX_BODY_BYTES, build_app
from tcdeploy.server.replica.token_gate import TokenGate

# Requests still running this long after SIGTERM are abandoned so a stop cannot hang forever.
GRACEFUL_SHUTDOWN_SECONDS = 30


class ModelLoadError(Exception):
    """The model could not be loaded; the message is one paragraph saying why."""


class ListenError(Exception):
    """The address to serve on cannot be used (port taken, socket path in use or unwritable)."""


def load_model(model_uri: str) -> PyFuncModel:
    """`mlflow.pyfunc.load_model`, with failures turned into a `ModelLoadError`."""
    # Flavors check this to behave as they do under `mlflow models serve`.
    os.environ[_MLFLOW_IS_IN_SERVING_ENVIRONMENT.name] = "true"
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        raise ModelLoadError(_describe_load_failure(model_uri, exc)) from exc


def uvicorn_config(app, *, host: str = "127.0.0.1", port: int = 5000, uds: str | None = None):
    """The uvicorn settings every replica runs with (TCP or a unix socket)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        uds=uds,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # The gateway keeps a pool of connections to each replica: don't drop idle ones early.
        timeout_keep_alive=75,
        server_header=False,
    )


def serve(
    model_uri: str,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    uds: str | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_ROWS,
    max_batch_wait_ms: float = 2.0,
    pod_name: str | None = None,
    max_body_mb: float = DEFAULT_MAX_BODY_BYTES / 2**20,
    hang_after_s: float = DEFAULT_HANG_AFTER_S,
    tcp: tuple[str, int] | None = None,
    token: str = "",
    model: PyFuncModel | None = None,
) -> None:
    """Load `model_uri` (unless `model` is it, loaded already) and serve it until SIGTERM or SIGINT.

    Ready means `GET /ping` answers 200: the model is loaded before the socket listens. On a
    signal the server stops accepting, finishes in-flight requests and returns. Raises
    `ModelLoadError` or `ListenError`, each with a message fit to show as is.

    `tcp` (host, port): listen there too, for a gateway on another machine; requests that come
    that way must carry `token` (see `token_gate`).
    """
    _configure_logging()
    if model is None:
        started = time.monotonic()
        model = load_model(model_uri)
        print(f"model loaded in {time.monotonic() - started:.2f}s", flush=True)
    app = build_app(
        model,
        model_uri=model_uri,
        pod_name=pod_name,
        max_batch_size=max_batch_size,
        max_batch_wait_ms=max_batch_wait_ms,
        max_body_bytes=int(max_body_mb * 2**20),
        hang_after_s=hang_after_s,
    )
    listener = _bind(host, port, uds)
    listeners = [listener]
    if tcp is not None:
        app = TokenGate(app, token)
        listeners.append(_bind(tcp[0], tcp[1], None))
    address = f"unix:{uds}" if uds else f"http://{host}:{listener.getsockname()[1]}"
    server = _AnnouncingServer(uvicorn_config(app, host=host, port=port, uds=uds), address)
    try:
        with _signals_end_serving_only():
            server.run(sockets=listeners)
    finally:
        for each in listeners:
            each.close()
        if uds:
            _remove_socket(uds)


def _bind(host: str, port: int, uds: str | None) -> socket.socket:
    """A bound socket for uvicorn, so a taken address is a clear `ListenError`."""
    try:
        if uds:
            return _bind_unix(uds)
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
            0
        ]
        listener = socket.socket(family, kind)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
        except OSError:
            listener.close()
            raise
        return listener
    except OSError as exc:
        where = f"unix socket {uds}" if uds else f"{host}:{port}"
        raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from exc


def _bind_unix(path: str) -> socket.socket:
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise OSError(errno.EEXIST, "the path exists and is not a socket")
        if _socket_answers(path):
            raise OSError(errno.EADDRINUSE, "another server is listening on it")
        os.unlink(path)  # left behind by a replica that was killed
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
    except OSError:
        listener.close()
        raise
    return listener


def _socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
        return True


class _AnnouncingServer(uvicorn.Server):
    """Prints where it serves once the socket is listening (runtimes wait for that line)."""

    def __init__(self, config: uvicorn.Config, address: str):
        super().__init__(config)
        self._address = address

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"serving on {self._address}", flush=True)


@contextlib.contextmanager
def _signals_end_serving_only() -> Iterator[None]:
    """Let a signal stop the server without then killing the process.

    Uvicorn shuts down gracefully on SIGTERM/SIGINT and afterwards re-raises the signal against
    the handlers that were installed before it ran; with no-op handlers there, `serve` returns
    and the process exits 0.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(signum, frame) -> None:
    pass


def _remove_socket(path: str) -> None:
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.WARNING,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


def _describe_load_failure(model_uri: str, exc: BaseException) -> str:
    message = str(exc).strip() or "(no message)"
    reason = f"cannot load model {model_uri!r}: {type(exc).__name__}: {message}"
    frame = _last_frame(exc)
    return f"{reason} (raised at {frame})" if frame else reason


def _last_frame(exc: BaseException) -> str | None:
    traceback = exc.__traceback__
    if traceback is None:
        return None
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    code = traceback.tb_frame.f_code
    return f"{code.co_filename}:{traceback.tb_lineno} in {code.co_name}"
