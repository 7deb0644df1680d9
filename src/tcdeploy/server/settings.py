"""The server's settings and secrets: flags, environment, and files in the data dir."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class AccessKey:
    secret_id: str
    secret_key: str = field(repr=False)
    workspaces: tuple[str, ...] = ("*",)

    def allows(self, workspace: str) -> bool:
        return "*" in self.workspaces or workspace in self.workspaces


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8600
    data_dir: Path = Path(".tcdeploy")
    tracking_uri: str = ""
    max_body_bytes: int = 10 * 2**20
    # Scaling: the cron jobs' timezone, how long a MinReplicas-0 service idles before it goes to
    # zero, and how often the scaling loop looks (seconds).
    timezone: str = "UTC"
    scale_to_zero_after: float = 300.0
    scale_interval: float = 1.0
    # How long the gateway waits for a replica's answer (then a 504), and how long a predict may
    # run before the replica's liveness probe fails.
    request_timeout: float = 60.0
    # Days of inference-table rows kept (whole UTC dates; 0 keeps every row).
    inference_retention_days: int = 30
    # Connections and requests at once (past them a 503), and how long a request may take to
    # arrive whole (past it a 408): see `connections`.
    max_connections: int = 2048
    request_read_timeout: float = 30.0
    # Replicas forked from a preloaded zygote of their model (runtime/forkserver.py); off: cold.
    fork_replicas: bool = True

    @property
    def public_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials.json"

    @classmethod
    def create(
        cls,
        host: str,
        port: int,
        data_dir: Path,
        *,
        timezone: str | None = None,
        scale_to_zero_after: float | None = None,
    ) -> ServerSettings:
        """Flags first, then the TCDEPLOY_ variables, then the defaults. Raises ValueError,
        naming the setting, for an unknown timezone or a number out of its range."""
        data_dir = data_dir.resolve()
        tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{data_dir / 'mlflow.db'}"
        zone = timezone or os.environ.get("TCDEPLOY_TIMEZONE") or "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: {zone!r} is not a known timezone (like UTC or Asia/Shanghai)") from None
        idle = scale_to_zero_after
        if idle is None:
            idle = env_number("TCDEPLOY_SCALE_TO_ZERO_AFTER", 300.0, 1, 10**7)
        elif idle < 1:
            raise ValueError(f"scale_to_zero_after: must be 1 s or more, got {idle:g}")
        interval = env_number("TCDEPLOY_SCALE_INTERVAL", 1.0, 0.05, 60)
        request_timeout = env_number("TCDEPLOY_REQUEST_TIMEOUT", 60.0, 1, 3600)
        max_connections = int(env_number("TCDEPLOY_MAX_CONNECTIONS", 2048, 16, 10**6, whole=True))
        read_timeout = env_number("TCDEPLOY_REQUEST_READ_TIMEOUT", 30.0, 1, 3600)
        retention = int(env_number("TCDEPLOY_INFERENCE_RETENTION_DAYS", 30, 0, 36500, whole=True))
        fork = bool(env_number("TCDEPLOY_FORK_REPLICAS", 1, 0, 1, whole=True))
        return cls(
            host=host,
            port=port,
            data_dir=data_dir,
            tracking_uri=tracking_uri,
            timezone=zone,
            scale_to_zero_after=idle,
            scale_interval=interval,
            request_timeout=request_timeout,
            inference_retention_days=retention,
            max_connections=max_connections,
            request_read_timeout=read_timeout,
            fork_replicas=fork,
        )


def env_number(name: str, default: float, low: float, high: float, *, whole: bool = False) -> float:
    """The number in environment variable `name` (absent or empty: `default`), refused naming
    the variable unless it is a number (a whole one, with `whole`) from `low` to `high`."""
    text = os.environ.get(name) or ""
    if not text:
        return default
    kind = "a whole number" if whole else "a number"
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise ValueError(f"{name}: must be {kind} from {low:g} to {high:g}, got {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name}: must be {kind} from {low:g} to {high:g}, got {text!r}")
    return value


# Files in the data dir that hold secrets or what they guard (token hashes, keys), made 0600
# at every start whatever mode they were left with.
SECRET_FILES = ("credentials.json", "server-secret", "state.db", "state.db-wal", "state.db-shm")


def secure_data_dir(data_dir: Path) -> None:
    """Make the data dir 0700 and its secrets 0600, creating the dir if needed: a data dir made
    by hand, copied, or left by an older version keeps whatever mode it had otherwise."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    for name in SECRET_FILES:
        path = data_dir / name
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o600)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, created with that mode (never briefly world-readable)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


KEY_ENVIRONMENT = ("TCDEPLOY_SECRET_ID", "TCDEPLOY_SECRET_KEY")


def load_access_keys(settings: ServerSettings) -> list[AccessKey]:
    """Keys from TCDEPLOY_SECRET_ID/KEY, else from credentials.json, generated on first start."""
    env_id, env_key = (os.environ.get(name) for name in KEY_ENVIRONMENT)
    path = settings.credentials_path
    if not path.exists():
        first = {
            "SecretId": env_id or "AKID" + secrets.token_hex(16),
            "SecretKey": env_key or secrets.token_urlsafe(32),
            "Workspaces": ["*"],
        }
        write_private(path, json.dumps({"Keys": [first]}, indent=2) + "\n")
    keys = [_key(entry) for entry in json.loads(path.read_text())["Keys"]]
    if env_id and env_key and all(k.secret_id != env_id for k in keys):
        keys.insert(0, AccessKey(env_id, env_key))
    return keys


def forget_key_environment() -> None:
    """Drop TCDEPLOY_SECRET_ID/KEY from the environment once the keys are loaded: the server's
    children inherit its environment, and a replica runs the model's own code."""
    for name in KEY_ENVIRONMENT:
        os.environ.pop(name, None)


def add_access_key(settings: ServerSettings, workspaces: list[str]) -> AccessKey:
    """Create a new key limited to `workspaces` and store it in credentials.json."""
    load_access_keys(settings)
    data = json.loads(settings.credentials_path.read_text())
    key = AccessKey("AKID" + secrets.token_hex(16), secrets.token_urlsafe(32), tuple(workspaces))
    data["Keys"].append({"SecretId": key.secret_id, "SecretKey": key.secret_key, "Workspaces": list(workspaces)})
    write_private(settings.credentials_path, json.dumps(data, indent=2) + "\n")
    return key


def server_secret(settings: ServerSettings) -> bytes:
    """A random secret kept in the data dir: derives token values and signs pod-page links."""
    path = settings.data_dir / "server-secret"
    if not path.exists():
        write_private(path, secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _key(entry: dict) -> AccessKey:
    return AccessKey(entry["SecretId"], entry["SecretKey"], tuple(entry.get("Workspaces") or ["*"]))


class DataDirInUse(RuntimeError):
    pass


def lock_data_dir(data_dir: Path):
    """Hold an exclusive lock on the data dir for the process's life: two servers on one data dir
    would adopt, reap and restart each other's replicas."""
    import fcntl

    handle = open(data_dir / "server.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DataDirInUse(f"another tcdeploy server is using {data_dir}") from None
    return handle
