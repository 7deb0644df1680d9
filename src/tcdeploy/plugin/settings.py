"""Settings for one client: where the API is, who signs, which workspace.

Everything comes from the target URI and the environment (a mapping, so tests pass their own).
Target URIs:

- ``tcdeploy`` / ``tcdeploy:/<region>``: the cloud, over https, at ``wedata.tencentcloudapi.com``
  and ``tione.tencentcloudapi.com`` (``TENCENTCLOUD_ENDPOINT`` overrides the host, which must
  still be under an allowed cloud domain).
- ``tcdeploy://127.0.0.1:8600`` / ``tcdeploy://localhost:8600``: a local ``tcdeploy server``, over
  http. Other hosts are refused unless listed in ``TCDEPLOY_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

SCHEME = "tcdeploy"
CLOUD_DOMAINS = (".tencentcloudapi.com", ".tencentcloud.com")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_REGION = "ap-guangzhou"
DEFAULT_LOCAL_PORT = 8600
DEFAULT_WORKSPACE = "default"
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_MAX_ATTEMPTS = 3

# (secret id, secret key, token) variable names, in the order they are tried.
SEED_CREDENTIAL_VARS = (
    "KERNEL_WEDATA_CLOUD_SDK_SECRET_ID",
    "KERNEL_WEDATA_CLOUD_SDK_SECRET_KEY",
    "KERNEL_WEDATA_CLOUD_SDK_SECRET_TOKEN",
)
SDK_CREDENTIAL_VARS = ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN")
REGION_VARS = ("KERNEL_WEDATA_REGION", "TENCENTCLOUD_REGION")
WORKSPACE_VAR = "WEDATA_WORKSPACE_ID"
ENDPOINT_VAR = "TENCENTCLOUD_ENDPOINT"
ALLOWED_HOSTS_VAR = "TCDEPLOY_ALLOWED_HOSTS"
DATA_DIR_VAR = "TCDEPLOY_DATA_DIR"
TIMEOUT_VAR = "TCDEPLOY_REQUEST_TIMEOUT"
ATTEMPTS_VAR = "TCDEPLOY_MAX_ATTEMPTS"
DEFAULT_DATA_DIR = ".tcdeploy"

_REGION = re.compile(r"^[a-z]{2,10}(-[a-z0-9]{1,20}){1,3}$")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def _invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


@dataclass(frozen=True)
class Target:
    """Where the two API services answer: ``scheme://host[:port]`` per service."""

    uri: str
    scheme: str  # "http" or "https"
    wedata_endpoint: str  # host[:port], as the SDK's HttpProfile wants it
    tione_endpoint: str
    region: str
    is_local: bool  # a self-hosted server on this machine (loopback)

    @property
    def is_self_hosted(self) -> bool:
        """A ``tcdeploy server`` (plain http), not the cloud."""
        return self.scheme == "http"

    def endpoint_for(self, service: str) -> str:
        return self.tione_endpoint if service == "tione" else self.wedata_endpoint


@dataclass(frozen=True)
class Credentials:
    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = ""

    def __repr__(self) -> str:  # the key and token never appear, even masked by length
        return f"Credentials(secret_id={self.secret_id!r}, source={self.source!r})"


@dataclass(frozen=True)
class Settings:
    target: Target
    credentials: Credentials
    workspace_id: str
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    @classmethod
    def from_target(cls, target_uri: str, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        target = parse_target(target_uri, env)
        return cls(
            target=target,
            credentials=resolve_credentials(target, env),
            workspace_id=resolve_workspace(target, env),
            request_timeout=_positive_number(env, TIMEOUT_VAR, DEFAULT_REQUEST_TIMEOUT),
            max_attempts=int(_positive_number(env, ATTEMPTS_VAR, DEFAULT_MAX_ATTEMPTS)),
        )


# ---- target URI ---------------------------------------------------------------------------------


def allowed_hosts(env: Mapping[str, str]) -> set[str]:
    """``TCDEPLOY_ALLOWED_HOSTS``: comma-separated ``host`` or ``host:port`` entries."""
    return {h.strip().lower() for h in env.get(ALLOWED_HOSTS_VAR, "").split(",") if h.strip()}


def _is_allow_listed(host: str, port: int | None, env: Mapping[str, str]) -> bool:
    listed = allowed_hosts(env)
    shown = f"[{host}]" if ":" in host else host
    return host in listed or shown in listed or (port is not None and f"{shown}:{port}" in listed)


def _is_cloud_host(host: str) -> bool:
    return any(host.endswith(domain) for domain in CLOUD_DOMAINS)


def _region_from(env: Mapping[str, str]) -> str:
    for name in REGION_VARS:
        if env.get(name):
            return _checked_region(env[name], name)
    return DEFAULT_REGION


def _checked_region(region: str, where: str) -> str:
    if not _REGION.match(region):
        raise _invalid(f"{where}: {region!r} is not a region name such as 'ap-guangzhou'")
    return region


def _host_port(netloc: str, what: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (``[v6]:port`` too) and check the host is a plain name or address."""
    if "@" in netloc:
        raise _invalid(f"{what}: credentials in the host part are not allowed; use the environment")
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = (parts.hostname or ""), parts.port
    except ValueError as exc:
        raise _invalid(f"{what}: {netloc!r} is not host[:port] ({exc})") from None
    if not host or not (_HOSTNAME.match(host) or _is_ip(host)):
        raise _invalid(f"{what}: {netloc!r} is not host[:port]")
    return host, port


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _endpoint(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def _cloud_target(uri: str, region: str, env: Mapping[str, str]) -> Target:
    override = env.get(ENDPOINT_VAR, "").strip()
    if not override:
        return Target(uri, "https", "wedata.tencentcloudapi.com", "tione.tencentcloudapi.com", region, is_local=False)
    if "/" in override:
        raise _invalid(
            f"{ENDPOINT_VAR}: {override!r} must be a bare host name such as "
            "'wedata.internal.tencentcloudapi.com' (no scheme or path)"
        )
    host, port = _host_port(override.lower(), ENDPOINT_VAR)
    if not (_is_cloud_host(host) or _is_allow_listed(host, port, env)):
        raise _invalid(
            f"{ENDPOINT_VAR}: host {host!r} is not under {' or '.join('*' + d for d in CLOUD_DOMAINS)}; "
            f"a different API host must be listed in {ALLOWED_HOSTS_VAR}"
        )
    wedata = _endpoint(host, port)
    return Target(uri, "https", wedata, _tione_beside(wedata), region, is_local=False)


def _tione_beside(wedata: str) -> str:
    # A configured host names the wedata API; TI-ONE lives beside it (wedata.x -> tione.x), and a
    # gateway that is neither answers both.
    return "tione." + wedata[len("wedata.") :] if wedata.startswith("wedata.") else wedata


def _host_target(uri: str, netloc: str, env: Mapping[str, str]) -> Target:
    host, port = _host_port(netloc.lower(), f"target {uri!r}")
    endpoint = _endpoint(host, port)
    region = _region_from(env)
    if _is_cloud_host(host):
        return Target(uri, "https", endpoint, _tione_beside(endpoint), region, is_local=False)
    if host in LOOPBACK_HOSTS:
        endpoint = _endpoint(host, port or DEFAULT_LOCAL_PORT)
        return Target(uri, "http", endpoint, endpoint, region, is_local=True)
    if _is_allow_listed(host, port, env):
        endpoint = _endpoint(host, port or DEFAULT_LOCAL_PORT)
        return Target(uri, "http", endpoint, endpoint, region, is_local=False)
    raise _invalid(
        f"target {uri!r}: host {host!r} is refused: the plugin signs requests with your cloud "
        "credentials, so it only talks to a tcdeploy server on this machine (127.0.0.1, "
        f"localhost) or to Tencent Cloud ({', '.join('*' + d for d in CLOUD_DOMAINS)}). "
        f"To use a tcdeploy server on another host, add {endpoint!r} to {ALLOWED_HOSTS_VAR}"
    )


def parse_target(target_uri: str, environ: Mapping[str, str] | None = None) -> Target:
    """Read a ``tcdeploy`` target URI; refuse hosts the credentials must not be sent to."""
    env = os.environ if environ is None else environ
    uri = (target_uri or "").strip()
    if uri == SCHEME:
        return _cloud_target(uri, _region_from(env), env)
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise _invalid(f"target {uri!r} is not a URI: {exc}") from None
    if parts.scheme != SCHEME:
        raise _invalid(
            f"target {uri!r} is not a tcdeploy target (tcdeploy, tcdeploy:/<region> or tcdeploy://127.0.0.1:8600)"
        )
    if parts.query or parts.fragment:
        raise _invalid(f"target {uri!r}: query strings and fragments are not supported")
    if parts.netloc:
        if parts.path not in ("", "/"):
            raise _invalid(f"target {uri!r}: a local target has no path; use tcdeploy://host:port")
        return _host_target(uri, parts.netloc, env)
    region = parts.path.strip("/")
    region = _checked_region(region, f"target {uri!r}") if region else _region_from(env)
    return _cloud_target(uri, region, env)


# ---- credentials and workspace --------------------------------------------------------------------


def _pair_from(env: Mapping[str, str], names: tuple[str, str, str]) -> Credentials | None:
    id_var, key_var, token_var = names
    secret_id, secret_key = env.get(id_var, "").strip(), env.get(key_var, "").strip()
    if secret_id and secret_key:
        return Credentials(secret_id, secret_key, env.get(token_var) or None, source=id_var)
    if secret_id or secret_key:
        missing = key_var if secret_id else id_var
        present = id_var if secret_id else key_var
        raise _invalid(f"{present} is set but {missing} is not: set both (or neither)")
    return None


def local_data_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get(DATA_DIR_VAR) or DEFAULT_DATA_DIR).expanduser()


def _from_credentials_file(env: Mapping[str, str]) -> Credentials | None:
    """The key a local ``tcdeploy server`` generated into ``<data dir>/credentials.json``."""
    path = local_data_dir(env) / "credentials.json"
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise _invalid(f"{path}: cannot read the server's credentials ({exc})") from None
    if isinstance(document, dict) and isinstance(document.get("Keys"), list) and document["Keys"]:
        document = document["Keys"][0]
    if not (isinstance(document, dict) and document.get("SecretId") and document.get("SecretKey")):
        raise _invalid(f'{path}: expected {{"SecretId": ..., "SecretKey": ...}}')
    return Credentials(str(document["SecretId"]), str(document["SecretKey"]), source=str(path))


def resolve_credentials(target: Target, environ: Mapping[str, str] | None = None) -> Credentials:
    """Seed variables first, then the SDK's, then (local targets) the server's credentials file."""
    env = os.environ if environ is None else environ
    for names in (SEED_CREDENTIAL_VARS, SDK_CREDENTIAL_VARS):
        found = _pair_from(env, names)
        if found:
            return found
    if target.is_local:
        found = _from_credentials_file(env)
        if found:
            return found
    local_hint = (
        f", or point {DATA_DIR_VAR} at the server's data dir (it holds credentials.json; default ./{DEFAULT_DATA_DIR})"
        if target.is_local
        else ""
    )
    raise MlflowException(
        f"no credentials for target {target.uri!r}: set {SEED_CREDENTIAL_VARS[0]} and "
        f"{SEED_CREDENTIAL_VARS[1]} (or {SDK_CREDENTIAL_VARS[0]} and {SDK_CREDENTIAL_VARS[1]})"
        f"{local_hint}",
        error_code=INVALID_PARAMETER_VALUE,
    )


def resolve_workspace(target: Target, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    workspace = env.get(WORKSPACE_VAR, "").strip()
    if workspace:
        return workspace
    if target.is_self_hosted:
        return DEFAULT_WORKSPACE
    raise _invalid(f"no workspace for target {target.uri!r}: set {WORKSPACE_VAR}")


def _positive_number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise _invalid(f"{name}: {raw!r} is not a positive number")
    return value
