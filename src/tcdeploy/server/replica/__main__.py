"""`python -m tcdeploy.server.replica`: one replica process serving one model.

Exit codes: 0 after a graceful stop (SIGTERM/SIGINT), 2 for bad arguments, 3 when the model
cannot be loaded, 4 when the address cannot be listened on (the reason is on stderr).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
from typing import TYPE_CHECKING

from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS
from tcdeploy.protocol.replica_hop import TOKEN_ENV

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

EXIT_MODEL_LOAD_FAILED = 3
EXIT_CANNOT_LISTEN = 4


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, got {value}")
    return value


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT, got {text!r}")
    return host.strip("[]"), _port(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tcdeploy.server.replica",
        description="Serve one MLflow model over HTTP (a tcdeploy replica).",
    )
    parser.add_argument("--model-uri", required=True, help="any MLflow model URI or local path")
    parser.add_argument("--uds", help="listen on this unix domain socket path")
    parser.add_argument("--host", help="listen on this TCP host (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, help="listen on this TCP port (default 5000)")
    parser.add_argument(
        "--max-batch-size",
        type=_positive_int,
        default=DEFAULT_MAX_BATCH_ROWS,
        help=f"most rows merged into one predict call (default {DEFAULT_MAX_BATCH_ROWS})",
    )
    parser.add_argument(
        "--max-batch-wait-ms",
        type=_non_negative_float,
        default=2.0,
        help="longest wait for a batch to fill (default 2.0)",
    )
    parser.add_argument(
        "--max-body-mb", type=_positive_float, default=16.0, help="largest request body accepted, in MiB (default 16)"
    )
    parser.add_argument(
        "--hang-after-s",
        type=_positive_float,
        default=60.0,
        help="a predict running longer than this fails GET /live, the liveness probe (default 60)",
    )
    parser.add_argument("--pod-name", help="shown by GET /version")
    parser.add_argument(
        "--tcp",
        type=_host_port,
        metavar="HOST:PORT",
        help=f"also listen on this TCP address; requests there must carry the token in ${TOKEN_ENV}",
    )
    return parser


def main(argv: list[str] | None = None, *, model: PyFuncModel | None = None) -> int:
    """Serve as the command line says; `model`, when given, is that URI already loaded (a replica
    forked by the zygote, `replica.zygote`, serves the model it loaded before the fork)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.uds and (args.host or args.port is not None):
        parser.error("give either --uds or --host/--port, not both")
    token = os.environ.pop(TOKEN_ENV, "")  # the model's own code need not see it
    if args.tcp and not token:
        parser.error(f"--tcp needs a token in ${TOKEN_ENV}")
    from tcdeploy.server.replica.server import ListenError, ModelLoadError, serve

    try:
        serve(
            args.model_uri,
            host=args.host or "127.0.0.1",
            port=5000 if args.port is None else args.port,
            uds=args.uds,
            max_batch_size=args.max_batch_size,
            max_batch_wait_ms=args.max_batch_wait_ms,
            pod_name=args.pod_name,
            max_body_mb=args.max_body_mb,
            hang_after_s=args.hang_after_s,
            tcp=args.tcp,
            token=token,
            model=model,
        )
    except ModelLoadError as exc:
        print(exc, file=sys.stderr, flush=True)
        return EXIT_MODEL_LOAD_FAILED
    except ListenError as exc:
        print(exc, file=sys.stderr, flush=True)
        return EXIT_CANNOT_LISTEN
    return 0


def _exit_now(code: int) -> None:
    """Exit without tearing down the interpreter.

    Finalising the thousands of modules MLflow, pandas and sklearn import takes a second or more,
    which every stop and rolling update would wait for. Exit handlers still run, so anything that
    flushes at exit (MLflow's trace export, logging) still does.
    """
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
