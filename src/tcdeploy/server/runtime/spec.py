"""What a replica is asked to be (ReplicaSpec) and what it is (ReplicaState)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS

# Reasons.
OOM_KILLED = "OOMKilled"
LIVENESS_FAILED = "LivenessProbeFailed"
NOT_READY = "NotReady"  # the readiness probe failed: out of rotation until it passes
ERROR = "Error"
CRASH_LOOP = "CrashLoopBackOff"
LOAD_FAILED = "LoadFailed"
READY_TIMEOUT = "ReadyTimeout"

# Exit code of `tcdeploy.server.replica` when the model cannot load (part of its contract).
LOAD_FAILED_EXIT_CODE = 3

# Pod names become file names (socket, pid file, log file): keep them to a safe alphabet.
_POD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def is_pod_name(pod_name: object) -> bool:
    return isinstance(pod_name, str) and _POD_NAME.fullmatch(pod_name) is not None


def check_pod_name(pod_name: str) -> str:
    if not is_pod_name(pod_name):
        raise ValueError(
            f"pod_name: {pod_name!r} is not 1-63 characters of [A-Za-z0-9_.-] starting with a letter or digit"
        )
    return pod_name


def _require_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: must be a number, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass(frozen=True)
class Probe:
    """How one health probe runs (Kubernetes' and TI-ONE's `Probe` timings)."""

    period: float = 5.0
    timeout: float = 2.0
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("period", "timeout"):
            _require_positive(name, getattr(self, name))
        _require_positive("initial_delay", self.initial_delay, allow_zero=True)
        for name in ("failure_threshold", "success_threshold"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {getattr(self, name)!r}")

    @property
    def allowance(self) -> float:
        """How long the probe may fail before it counts: the startup probe's time to be ready."""
        return self.initial_delay + self.period * self.failure_threshold


@dataclass(frozen=True)
class HealthProbes:
    """A replica's probes once it is ready: liveness (`GET /live`; failing it, the replica is
    killed and restarted) and readiness (`GET /ping`; failing it, the replica leaves rotation
    until it passes again). `startup`, when given, bounds the time to first be ready."""

    liveness: Probe = Probe()
    readiness: Probe = Probe()
    startup: Probe | None = None


@dataclass(frozen=True)
class ReplicaSpec:
    """One replica to run.

    `cpu_millicores` is not a hard limit here: it sets the thread-count hints of the numeric
    libraries (OMP/OpenBLAS/MKL/numexpr) to ceil(millicores / 1000), so that N replicas on one
    machine don't each start a thread per core. `memory_mb` is enforced (RSS of the replica and its
    children; over it the replica is killed with reason "OOMKilled").
    """

    pod_name: str
    service_id: str
    model_uri: str
    cpu_millicores: int
    memory_mb: int
    max_batch_size: int = DEFAULT_MAX_BATCH_ROWS
    max_batch_wait_ms: float = 2.0
    env: Mapping[str, str] = field(default_factory=dict)
    probes: HealthProbes = HealthProbes()
    # A predict running longer than this fails the liveness probe (see `replica.app`).
    hang_after_s: float = 60.0
    # "host:port" the replica listens on besides its unix socket, for a gateway on another machine
    # (the Ray runtime's data hop; the token it checks comes in `env`). Empty: the socket only.
    tcp: str = ""

    def __post_init__(self) -> None:
        check_pod_name(self.pod_name)
        _require_positive("hang_after_s", self.hang_after_s)
        if not isinstance(self.service_id, str) or not self.service_id:
            raise ValueError("service_id: must be a non-empty string")
        if not isinstance(self.model_uri, str) or not self.model_uri:
            raise ValueError("model_uri: must be a non-empty string")
        _require_positive("cpu_millicores", self.cpu_millicores)
        _require_positive("memory_mb", self.memory_mb)
        _require_positive("max_batch_size", self.max_batch_size)
        _require_positive("max_batch_wait_ms", self.max_batch_wait_ms, allow_zero=True)
        for key, value in self.env.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key or "=" in key:
                raise ValueError(f"env: {key!r}={value!r} is not a valid environment variable")


@dataclass
class ReplicaState:
    """A snapshot of one replica; `on_change` receives a fresh copy on every change."""

    pod_name: str
    service_id: str
    phase: str
    ready: bool = False
    restart_count: int = 0
    start_time: float | None = None
    pid: int | None = None
    address: str | None = None
    reason: str = ""
    message: str = ""
    crash_looping: bool = False
    node: str = ""  # the machine it runs on, when that is not the server's (the Ray runtime)

    def copy(self) -> ReplicaState:
        return dataclasses.replace(self)
