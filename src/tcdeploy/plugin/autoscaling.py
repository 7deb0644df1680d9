"""The plugin's `autoscaling` config as the wire's `HorizontalPodAutoscaler`.

``{"min_replicas": 1, "max_replicas": 4, "metrics": {"concurrency-util": 4},
"scale_up_window": 0, "scale_down_window": 120}``: the metrics by TI-ONE's names (`cpu-util`,
`memory-util`, `service-qps`, `concurrency-util`), the windows in seconds. The wire's own member
names (`MinReplicas`, `HpaMetrics`, …) work too. The server checks the ranges.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcdeploy.plugin.configkeys import invalid

_NAMES = {
    "min_replicas": "MinReplicas",
    "max_replicas": "MaxReplicas",
    "metrics": "HpaMetrics",
    "scale_up_window": "ScaleUpStabilizationWindowSeconds",
    "scale_down_window": "ScaleDownStabilizationWindowSeconds",
}
# convert_config has already turned snake_case keys into CamelCase ones: the same, so spelled.
_NAMES.update({"Metrics": "HpaMetrics", "ScaleUpWindow": _NAMES["scale_up_window"]})
_NAMES["ScaleDownWindow"] = _NAMES["scale_down_window"]
EXAMPLE = '{"min_replicas": 1, "max_replicas": 4, "metrics": {"concurrency-util": 4}}'


def autoscaler_body(given: Any) -> dict[str, Any]:
    """``HorizontalPodAutoscaler`` from the ``autoscaling`` config."""
    if not isinstance(given, Mapping):
        raise invalid(f"config autoscaling must be a JSON object such as {EXAMPLE}")
    wire_names = set(_NAMES.values())
    unknown = sorted(k for k in given if k not in _NAMES and k not in wire_names)
    if unknown:
        known = ", ".join(k for k in _NAMES if k.islower())
        raise invalid(f"config autoscaling: {', '.join(unknown)} not one of {known}")
    body = {_NAMES.get(k, k): v for k, v in given.items()}
    metrics = body.get("HpaMetrics")
    if isinstance(metrics, Mapping):
        # Lower-cased: TI-ONE's names are, and convert_config capitalised the keys it was given.
        body["HpaMetrics"] = [{"Name": name.lower(), "Value": value} for name, value in metrics.items()]
    elif metrics is not None and not isinstance(metrics, list):
        raise invalid('config autoscaling: metrics must be an object such as {"concurrency-util": 4}')
    return body


def with_autoscaling(fields: dict[str, Any], scale_mode_given: bool) -> dict[str, Any]:
    """A service's wire fields with ``autoscaling`` made the wire's: it means ``ScaleMode`` AUTO
    (HPA) unless ``scale_mode`` was given."""
    if "HorizontalPodAutoscaler" not in fields:
        return fields
    fields = {**fields, "HorizontalPodAutoscaler": autoscaler_body(fields["HorizontalPodAutoscaler"])}
    if not scale_mode_given:
        fields["ScaleMode"] = "AUTO"
    if fields.get("ScaleMode") == "AUTO":
        fields.setdefault("ScaleStrategy", "HPA")
    return fields
