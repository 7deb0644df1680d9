"""A service's `HealthProbe` (TI-ONE's shape): checked when it is given, and turned into the
probes its replicas run (`runtime.HealthProbes`), with Kubernetes-like defaults when absent.

A replica answers its probes itself over its own socket: liveness at `GET /live`, readiness at
`GET /ping`; the startup probe bounds the time to first be ready. So only `HTTPGet` probes make
sense here, and a path or port a probe names is kept but not used: a config written for the cloud
works unchanged (see docs/wire.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue
from tcdeploy.server.runtime import HealthProbes, Probe

PROBES = ("LivenessProbe", "ReadinessProbe", "StartupProbe")
_RANGES = {
    "InitialDelaySeconds": (0, 3600),
    "PeriodSeconds": (1, 300),
    "TimeoutSeconds": (1, 300),
    "FailureThreshold": (1, 100),
    "SuccessThreshold": (1, 100),
}


def check_health_probe(value: Any, field: str = "HealthProbe") -> None:
    """Refuse, naming the member, a probe this server cannot run as asked."""
    if value is None:
        return
    for name in PROBES:
        probe = value.get(name)
        if probe is not None:
            _check_probe(probe, f"{field}.{name}")


def _check_probe(probe: Mapping[str, Any], field: str) -> None:
    for member, (low, high) in _RANGES.items():
        number = probe.get(member)
        if number is not None and (
            isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high
        ):
            raise InvalidParameterValue(f"{field}.{member}", f"must be an integer from {low} to {high}")
    if not field.endswith("ReadinessProbe") and probe.get("SuccessThreshold") not in (None, 1):
        raise InvalidParameterValue(f"{field}.SuccessThreshold", "must be 1 for a liveness or startup probe")
    action = probe.get("ProbeAction") or {}
    kind = action.get("ActionType") or "HTTPGet"
    if kind != "HTTPGet":
        raise InvalidParameterValue(
            f"{field}.ProbeAction.ActionType",
            f"{kind!r} cannot run here: a replica answers HTTPGet probes on its own socket",
        )


def health_probes(spec: Mapping[str, Any]) -> HealthProbes:
    """The probes a service's replicas run: its `HealthProbe` (checked before it was stored)
    over the defaults."""
    given = spec.get("HealthProbe") or {}
    startup = given.get("StartupProbe")
    return HealthProbes(
        liveness=_probe(given.get("LivenessProbe")),
        readiness=_probe(given.get("ReadinessProbe")),
        startup=_probe(startup) if startup else None,
    )


def _probe(given: Mapping[str, Any] | None) -> Probe:
    default, given = Probe(), given or {}
    return Probe(
        period=float(given.get("PeriodSeconds") or default.period),
        timeout=float(given.get("TimeoutSeconds") or default.timeout),
        failure_threshold=int(given.get("FailureThreshold") or default.failure_threshold),
        success_threshold=int(given.get("SuccessThreshold") or default.success_threshold),
        initial_delay=float(given.get("InitialDelaySeconds") or default.initial_delay),
    )
