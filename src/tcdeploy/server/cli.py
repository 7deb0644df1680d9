"""The `tcdeploy` command: run the model service, read an inference table, add access keys, print
a group's token."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
from pathlib import Path

DATA_DIR_HELP = "the server's state: database, credentials, replica logs (default: ./.tcdeploy)"


def main(argv: list[str] | None = None) -> int:
    # Only argparse here: `tcdeploy --help` must answer at once; each command imports what it needs.
    parser = argparse.ArgumentParser(prog="tcdeploy", description="The tcdeploy model service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = commands.add_parser("server", help="run the model service in the foreground (Ctrl-C stops it)")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    server.add_argument(
        "--port", type=int, default=8600, help="port of the cloud API and the /predict URLs (default: 8600)"
    )
    server.add_argument("--data-dir", type=Path, default=Path(".tcdeploy"), help=DATA_DIR_HELP)
    server.add_argument(
        "--timezone", help="timezone of scheduled scaling (cron jobs) (default: $TCDEPLOY_TIMEZONE or UTC)"
    )
    server.add_argument(
        "--scale-to-zero-after",
        type=float,
        help="seconds a service that may scale to 0 idles before it does (default: $TCDEPLOY_SCALE_TO_ZERO_AFTER or 300)",
    )
    server.add_argument(
        "--access-log", action="store_true", help="print one line per HTTP request (method, path, action, status, ms)"
    )
    server.add_argument(
        "--runtime",
        choices=("local", "ray"),
        default="local",
        help="where replicas run: local processes (default) or actors on a Ray cluster (needs mlflow-tcdeploy[ray])",
    )
    server.add_argument("--ray-address", default="auto", help="the Ray cluster to join (default: auto, the local one)")
    server.add_argument(
        "--ray-namespace", help="the Ray namespace of this server's actors (default: from the data dir)"
    )
    server.add_argument(
        "--ray-shared-storage",
        action="store_true",
        help="every Ray node sees this machine's registry files (a shared disk): allow a sqlite:/file: registry",
    )
    server.set_defaults(run=_serve)

    table = commands.add_parser("inference-table", help="print a group's inference table (the requests it logged)")
    table.add_argument("group_id", help="the service group's id (ServiceGroupId)")
    table.add_argument("--data-dir", type=Path, default=Path(".tcdeploy"), help=DATA_DIR_HELP)
    table.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)"
    )
    table.set_defaults(run=_inference_table)

    keys = commands.add_parser("add-key", help="create an access key limited to some workspaces")
    keys.add_argument(
        "--workspace", action="append", required=True, dest="workspaces", help="a workspace the key may act in (repeat)"
    )
    keys.add_argument("--data-dir", type=Path, default=Path(".tcdeploy"), help=DATA_DIR_HELP)
    keys.set_defaults(run=_add_key)

    token = commands.add_parser(
        "token",
        help='print the token a group\'s /predict URL takes (for curl -H "Authorization: <token>")',
        description="Print the token of a service group (an MLflow endpoint) whose authorization is on; "
        "nothing (and a note on stderr) when it is off. Asks the running server.",
    )
    token.add_argument("group", help="the group's id or unique name (an MLflow endpoint or deployment name)")
    token.add_argument(
        "--target", default="tcdeploy://127.0.0.1:8600", help="the server, as an MLflow target (default: %(default)s)"
    )
    token.add_argument(
        "--data-dir",
        type=Path,
        help="the server's data dir, where its credentials are (default: $TCDEPLOY_DATA_DIR or ./.tcdeploy)",
    )
    token.set_defaults(run=_token)

    args = parser.parse_args(argv)
    return args.run(args) or 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .accesslog import AccessLog
    from .app import build_app
    from .connections import serving_config
    from .settings import DataDirInUse, ServerSettings, forget_key_environment, lock_data_dir

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness probe is noise
    try:
        settings = ServerSettings.create(
            args.host, args.port, args.data_dir, timezone=args.timezone, scale_to_zero_after=args.scale_to_zero_after
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        lock = lock_data_dir(settings.data_dir)  # noqa: F841  (held until the process exits)
    except DataDirInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app = build_app(settings, _ray_options(args))
    if args.access_log:
        app = AccessLog(app)
    forget_key_environment()
    if not _is_loopback(args.host):
        print(f"warning: binding {args.host}: the service is reachable from other machines", file=sys.stderr)
    print(f"tcdeploy server: {settings.public_url}  (target tcdeploy://{args.host}:{args.port})", flush=True)
    print(f"credentials: {settings.credentials_path}", flush=True)
    print(f"console: {settings.public_url}/console  (log in with a SecretId/SecretKey of the credentials)", flush=True)
    print(f"MLflow registry: {settings.tracking_uri}", flush=True)
    print(
        f"clients: export TCDEPLOY_DATA_DIR={settings.data_dir} MLFLOW_TRACKING_URI={settings.tracking_uri}", flush=True
    )
    print(
        f"schedules: timezone {settings.timezone}; scale to zero after {settings.scale_to_zero_after:g} s idle",
        flush=True,
    )
    config = serving_config(
        app,
        host=args.host,
        port=args.port,
        max_connections=settings.max_connections,
        read_timeout=settings.request_read_timeout,
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal with the handler
    # that was there before it; a quiet handler makes a clean stop exit 0 rather than die by signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    uvicorn.Server(config).run()
    print("tcdeploy server stopped", flush=True)
    return 0


def _ray_options(args: argparse.Namespace):
    if args.runtime != "ray":
        return None
    from .runtime.ray_runtime import RayOptions

    return RayOptions(address=args.ray_address, namespace=args.ray_namespace, shared_storage=args.ray_shared_storage)


def _inference_table(args: argparse.Namespace) -> int:
    from .gateway import read_inference_table

    frame = read_inference_table(args.data_dir.resolve(), args.group_id)
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        frame.to_json(sys.stdout, orient="records", date_format="iso")
        print()
    else:
        print(frame.to_string(index=False) if len(frame) else "(no rows)")
    return 0


def _add_key(args: argparse.Namespace) -> int:
    from .settings import ServerSettings, add_access_key

    settings = ServerSettings.create("127.0.0.1", 8600, args.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = add_access_key(settings, args.workspaces)
    print(f"SecretId {key.secret_id} for workspaces {', '.join(key.workspaces)}")
    print(f"its SecretKey is in {settings.credentials_path}")
    return 0


def _token(args: argparse.Namespace) -> int:
    import os

    if args.data_dir is not None:
        os.environ["TCDEPLOY_DATA_DIR"] = str(args.data_dir.resolve())
    from mlflow.exceptions import MlflowException

    from tcdeploy.plugin.client import TcDeploymentClient

    try:
        endpoint = _endpoint_of(TcDeploymentClient(args.target), args.group)
    except MlflowException as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    if not endpoint["auth_enabled"]:
        print(f"endpoint {endpoint['name']!r} has authorization off: its URL takes no token", file=sys.stderr)
        return 0
    print(endpoint["auth_token"])
    return 0


def _endpoint_of(client, ref: str) -> dict:
    """The endpoint ``ref`` names, or the one of the deployment it names (whose group's URL a
    user calls)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_endpoint(ref)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    return client.get_endpoint(client.get_deployment(ref)["service_group_id"])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
