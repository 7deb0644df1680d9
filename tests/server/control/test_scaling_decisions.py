"""The autoscaler's and the schedules' decisions, as pure functions: Kubernetes' formula, the
tolerance band, the stabilization windows, the bounds, idling to zero; cron runs in a stated
timezone, excluded dates, the latest missed run only; the checks of the settings."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tcdeploy.protocol.errors import InvalidParameterValue, MissingParameter
from tcdeploy.server.control.backend.autoscaler import Load, Policy, Stabilizer, decide, describe, propose
from tcdeploy.server.control.backend.scaling_specs import check_scaling
from tcdeploy.server.control.backend.schedules import apply_run, due_run, latest_run

UTC = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def policy(low=1, high=4, up=0, down=300, **targets) -> Policy:
    return Policy(low, high, targets or {"concurrency-util": 4.0}, up, down)


def load(ready=1, inflight=0.0, rps=0.0) -> Load:
    return Load(ready=ready, inflight_mean=inflight, requests_per_second=rps)


def at(text: str, zone=UTC) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


# ---- the formula ------------------------------------------------------------------------------


def test_the_formula_is_ceil_of_current_times_observed_over_target():
    assert propose(2, {"concurrency-util": 7.6}, {"concurrency-util": 4}).replicas == 4  # ceil(2 × 1.9)
    assert propose(3, {"concurrency-util": 1.0}, {"concurrency-util": 4}).replicas == 1  # ceil(0.75)


def test_within_the_tolerance_band_the_count_stays():
    assert propose(4, {"concurrency-util": 4.3}, {"concurrency-util": 4}).replicas == 4
    assert propose(4, {"concurrency-util": 3.7}, {"concurrency-util": 4}).replicas == 4
    assert propose(4, {"concurrency-util": 4.5}, {"concurrency-util": 4}).replicas == 5


def test_the_highest_metric_wins_and_says_why():
    proposal = propose(2, {"concurrency-util": 2.0, "service-qps": 30.0}, {"concurrency-util": 4, "service-qps": 10})
    assert proposal.replicas == 6
    assert proposal.reason == "qps 30.0/replica > target 10"


def test_the_event_message_names_the_metric_and_both_counts():
    decision = decide(0.0, 2, load(ready=2, inflight=15.2), policy(), Stabilizer(), idle_for=0, idle_after=300)
    assert describe(decision, 2) == "concurrency 7.6/replica > target 4: 2 → 4"


def test_bounds_clamp_both_ways():
    assert (
        decide(0.0, 2, load(ready=2, inflight=80), policy(high=3), Stabilizer(), idle_for=0, idle_after=300).replicas
        == 3
    )
    assert decide(0.0, 2, load(ready=2), policy(low=2, down=0), Stabilizer(), idle_for=0, idle_after=300).replicas == 2


# ---- stabilization ----------------------------------------------------------------------------


def test_up_at_once_down_only_after_the_window():
    stabilizer, rules = Stabilizer(), policy(up=0, down=30)
    assert decide(0.0, 1, load(1, 12.0), rules, stabilizer, idle_for=0, idle_after=300).replicas == 3
    # The load goes; for 30 s the highest recommendation (3) holds the count.
    for t in (5.0, 15.0, 29.0):
        assert decide(t, 3, load(3, 0.0), rules, stabilizer, idle_for=0, idle_after=300).replicas == 3
    assert decide(31.0, 3, load(3, 0.0), rules, stabilizer, idle_for=0, idle_after=300).replicas == 1


def test_an_up_window_waits_for_the_load_to_last():
    stabilizer, rules = Stabilizer(), policy(up=10, down=0)
    decide(0.0, 1, load(1, 0.0), rules, stabilizer, idle_for=0, idle_after=300)
    assert decide(5.0, 1, load(1, 12.0), rules, stabilizer, idle_for=0, idle_after=300).replicas == 1  # a spike
    assert decide(11.0, 1, load(1, 12.0), rules, stabilizer, idle_for=0, idle_after=300).replicas == 3


# ---- zero -------------------------------------------------------------------------------------


def test_min_zero_idles_to_zero_after_the_idle_time_and_not_before():
    rules = policy(low=0)
    assert decide(0.0, 1, load(1), rules, Stabilizer(), idle_for=299, idle_after=300).replicas == 1
    decision = decide(0.0, 1, load(1), rules, Stabilizer(), idle_for=301, idle_after=300)
    assert decision.replicas == 0 and decision.to_zero


def test_min_one_never_reaches_zero_and_zero_waits_for_a_request():
    assert decide(0.0, 1, load(1), policy(low=1, down=0), Stabilizer(), idle_for=1e6, idle_after=1).replicas == 1
    assert decide(0.0, 0, load(0, 5.0), policy(low=0), Stabilizer(), idle_for=0, idle_after=1) is None


# ---- cron -------------------------------------------------------------------------------------


def test_a_run_is_due_once_in_the_stated_timezone():
    jobs = [{"Name": "morning", "Schedule": "0 9 * * *", "TargetReplicas": 3}]
    nine_shanghai = at("2026-03-02T09:00:30", SHANGHAI)
    run = due_run(jobs, nine_shanghai - 3600, nine_shanghai, SHANGHAI)
    assert run is not None and run.when.hour == 9 and run.name == "morning"
    assert due_run(jobs, nine_shanghai, nine_shanghai + 59, SHANGHAI) is None  # not twice
    assert due_run(jobs, nine_shanghai - 3600, nine_shanghai, UTC) is None  # 09:00 UTC is later


def test_after_downtime_only_the_latest_missed_run_applies():
    jobs = [
        {"Name": "up", "Schedule": "0 9 * * *", "TargetReplicas": 3},
        {"Name": "down", "Schedule": "0 18 * * *", "TargetReplicas": 1},
    ]
    three_days_later = at("2026-03-05T10:00:00")
    run = due_run(jobs, at("2026-03-02T08:00:00"), three_days_later, UTC)
    assert run.name == "up" and run.when.day == 5


def test_excluded_dates_skip_a_run_by_cron_or_by_date():
    when = at("2026-12-25T09:00:00")
    assert latest_run("0 9 * * *", ["* * 25 12 *"], when - 60, when, UTC) is None
    assert latest_run("0 9 * * *", ["2026-12-25"], when - 60, when, UTC) is None
    assert latest_run("0 9 * * *", ["2026-12-24"], when - 60, when, UTC) is not None


def test_a_job_sets_the_count_or_moves_the_bounds():
    assert apply_run({"TargetReplicas": 3}, 1, {}) == (3, {})
    assert apply_run({"MinReplicas": 2, "MaxReplicas": 6}, 1, {}) == (2, {"MinReplicas": 2, "MaxReplicas": 6})
    assert apply_run({"MaxReplicas": 2}, 5, {"MinReplicas": 1}) == (2, {"MinReplicas": 1, "MaxReplicas": 2})


def test_cron_bounds_move_the_autoscalers():
    spec = {
        "ScaleMode": "AUTO",
        "HorizontalPodAutoscaler": {
            "MinReplicas": 1,
            "MaxReplicas": 4,
            "HpaMetrics": [{"Name": "cpu-util", "Value": 50}],
        },
        "_Bounds": {"MinReplicas": 2},
    }
    rules = Policy.of(spec)
    assert (rules.min_replicas, rules.max_replicas, dict(rules.targets)) == (2, 4, {"cpu-util": 50.0})


# ---- the checks -------------------------------------------------------------------------------

HPA = {"MinReplicas": 1, "MaxReplicas": 4, "HpaMetrics": [{"Name": "concurrency-util", "Value": 4}]}


def check(**spec):
    check_scaling(spec, "Services.0", given=set(spec), now=at("2026-03-01T00:00:00"), max_replicas=16)


@pytest.mark.parametrize(
    ("spec", "field", "error"),
    [
        ({"ScaleMode": "AUTO"}, "Services.0.HorizontalPodAutoscaler", MissingParameter),
        ({"ScaleMode": "AUTO", "HorizontalPodAutoscaler": {**HPA, "HpaMetrics": [{"Name": "gpu-util", "Value": 50}]}},
         "Services.0.HorizontalPodAutoscaler.HpaMetrics.0.Name", InvalidParameterValue),
        ({"ScaleMode": "AUTO", "HorizontalPodAutoscaler": {**HPA, "HpaMetrics": [{"Name": "cpu-util", "Value": 5}]}},
         "Services.0.HorizontalPodAutoscaler.HpaMetrics.0.Value", InvalidParameterValue),
        ({"ScaleMode": "AUTO", "HorizontalPodAutoscaler": {**HPA, "HpaMetrics": [{"Name": "service-qps", "Value": 6000}]}},
         "Services.0.HorizontalPodAutoscaler.HpaMetrics.0.Value", InvalidParameterValue),
        ({"ScaleMode": "AUTO", "HorizontalPodAutoscaler": {**HPA, "MinReplicas": 5}},
         "Services.0.HorizontalPodAutoscaler.MaxReplicas", InvalidParameterValue),
        ({"ScaleMode": "AUTO", "ScaleStrategy": "CRON"}, "Services.0.CronScaleJobs", MissingParameter),
        ({"ScaleMode": "AUTO", "ScaleStrategy": "CRON", "CronScaleJobs": [{"Schedule": "61 * * * *", "TargetReplicas": 1}]},
         "Services.0.CronScaleJobs.0.Schedule", InvalidParameterValue),
        ({"CronScaleJobs": [{"Schedule": "0 9 * * *"}]}, "Services.0.CronScaleJobs.0.TargetReplicas", MissingParameter),
        ({"ScaleMode": "AUTO", "ScaleStrategy": "VPA"}, "Services.0.ScaleStrategy", InvalidParameterValue),
        ({"ScheduledAction": {"ScheduleStop": True, "ScheduleStopTime": "2020-01-01T00:00:00+08:00"}},
         "Services.0.ScheduledAction.ScheduleStopTime", InvalidParameterValue),
        ({"ScheduledAction": {"ScheduleStop": True}}, "Services.0.ScheduledAction.ScheduleStopTime", MissingParameter),
        ({"ServiceLimit": {"EnableInstanceReqLimit": True, "InstanceReqLimit": 0}},
         "Services.0.ServiceLimit.InstanceReqLimit", MissingParameter),
    ],
)  # fmt: skip
def test_settings_the_server_cannot_act_on_are_refused_naming_the_member(spec, field, error):
    with pytest.raises(error) as refused:
        check(**spec)
    assert field in str(refused.value)


def test_a_past_stop_time_already_stored_does_not_block_other_updates():
    stored = {"ScheduledAction": {"ScheduleStop": True, "ScheduleStopTime": "2020-01-01T00:00:00+08:00"}}
    check_scaling(stored, "", given={"Replicas"}, now=at("2026-03-01T00:00:00"), max_replicas=16)


def test_manual_keeps_an_autoscaler_and_jobs_for_later():
    check(ScaleMode="MANUAL", HorizontalPodAutoscaler={"MinReplicas": 1, "MaxReplicas": 2},
          CronScaleJobs=[{"Schedule": "0 9 * * *", "TargetReplicas": 2}])  # fmt: skip


def test_good_settings_pass():
    check(ScaleMode="AUTO", HorizontalPodAutoscaler=HPA)
    check(ScaleMode="AUTO", ScaleStrategy="CRON", CronScaleJobs=[{"Schedule": "0 9 * * 1-5", "TargetReplicas": 2,
          "ExcludeDates": ["2026-10-01", "* * 25 12 *"]}])  # fmt: skip
    check(ScheduledAction={"ScheduleStop": True, "ScheduleStopTime": "2030-01-01T00:00:00+08:00"})
