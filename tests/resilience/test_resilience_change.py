"""Under change: rolling updates, weight shifts, stop/resume and scaling, each under steady load."""

from __future__ import annotations

import time

from tests.support.cloudapi import call, pod_facts

from .resilience_helpers import (
    LOGISTIC_ANSWERS,
    SENTINEL_ANSWER,
    deploy,
    group_url,
    service,
    update,
    varied_bodies,
    wait_settled,
    wait_until,
)
from .resilience_load import Load, answers_seen, describe, during, failed


def test_a_rolling_update_of_model_and_instance_type_fails_no_request(
    shared_server, wedata, logistic_model_dir, sentinel_model_dir
):
    svc = deploy(wedata, "roll", logistic_model_dir, replicas=2)
    sid = svc["ServiceId"]
    old_pods = {pod["PodName"] for pod in pod_facts(svc)}
    with Load(group_url(shared_server, svc["ServiceGroupId"]), varied_bodies) as load:
        load.wait_for_calls(20)
        assert update(wedata, sid, MlModelInfo={"ModelPath": str(sentinel_model_dir)})["Status"] == "UPDATING"
        model_rolled = wait_settled(wedata, sid, ready=2)
        after_model = time.monotonic()
        load.wait_for_calls(20)
        update(wedata, sid, InstanceType="TI.S.MEDIUM.POST")
        size_rolled = wait_settled(wedata, sid, ready=2)
        after_size = time.monotonic()
        load.wait_for_calls(20)
    calls = load.calls
    assert not failed(calls), describe(calls)
    assert answers_seen(during(calls, 0, after_model - 60)) <= LOGISTIC_ANSWERS | {SENTINEL_ANSWER}
    assert answers_seen(during(calls, after_model)) == {SENTINEL_ANSWER}
    assert answers_seen(during(calls, after_size)) == {SENTINEL_ANSWER}
    # Each roll replaced every pod, one at a time, with none left over.
    model_pods = {pod["PodName"] for pod in pod_facts(model_rolled)}
    size_pods = {pod["PodName"] for pod in pod_facts(size_rolled)}
    assert len(model_pods) == len(size_pods) == 2
    assert not (model_pods & old_pods) and not (size_pods & model_pods)
    assert size_rolled["InstanceType"] == "TI.S.MEDIUM.POST"
    assert len(calls) > 60


def test_shifting_weights_between_two_versions_fails_no_request(
    shared_server, wedata, tione, logistic_model_dir, sentinel_model_dir
):
    first = deploy(wedata, "shift-a", logistic_model_dir)
    gid = first["ServiceGroupId"]
    second = deploy(wedata, "shift-b", sentinel_model_dir, group_id=gid)
    assert (first["Weight"], second["Weight"]) == (100, 0)

    def weights(a: int, b: int) -> None:
        call(
            tione,
            "ModifyServiceGroupWeights",
            {
                "ServiceGroupId": gid,
                "Weights": [
                    {"ServiceId": first["ServiceId"], "Weight": a},
                    {"ServiceId": second["ServiceId"], "Weight": b},
                ],
            },
        )

    with Load(group_url(shared_server, gid), varied_bodies) as load:
        load.wait_for_calls(20)
        only_first = time.monotonic()
        weights(50, 50)
        half = time.monotonic()
        load.wait_for_calls(40)
        weights(0, 100)
        only_second = time.monotonic()
        load.wait_for_calls(20)
        weights(100, 0)
        back = time.monotonic()
        load.wait_for_calls(20)
    calls = load.calls
    assert not failed(calls), describe(calls)
    assert answers_seen(during(calls, 0, only_first)) <= LOGISTIC_ANSWERS
    assert SENTINEL_ANSWER in answers_seen(during(calls, half, only_second))
    assert answers_seen(during(calls, only_second, back)) == {SENTINEL_ANSWER}
    assert answers_seen(during(calls, back)) <= LOGISTIC_ANSWERS


def test_scale_up_down_stop_and_resume_fail_nothing_while_a_replica_serves(shared_server, wedata, logistic_model_dir):
    svc = deploy(wedata, "scale", logistic_model_dir)
    sid = svc["ServiceId"]
    with Load(group_url(shared_server, svc["ServiceGroupId"]), varied_bodies) as load:
        load.wait_for_calls(20)
        update(wedata, sid, ServiceAction="SCALE", Replicas=2)
        wait_settled(wedata, sid, ready=2)
        load.wait_for_calls(20)
        update(wedata, sid, ServiceAction="SCALE", Replicas=1)
        wait_settled(wedata, sid, ready=1)
        load.wait_for_calls(20)
        before_stop = time.monotonic()
        update(wedata, sid, ServiceAction="STOP")
        stop_answered = time.monotonic()
        assert wait_until(lambda: service(wedata, sid)["Status"] == "STOPPED", timeout=60)
        load.wait_for_calls(10)
        update(wedata, sid, ServiceAction="RESUME")
        resume_answered = time.monotonic()
        resumed = wait_settled(wedata, sid, ready=1)
        load.wait_for_calls(20)
    calls = load.calls
    # From RESUME on, requests wait for the replica being started rather than fail.
    serving = during(calls, 0, before_stop) + during(calls, resume_answered)
    assert not failed(serving), describe(serving)
    stopped = during(calls, stop_answered, resume_answered)
    refused = [c for c in stopped if c.status == 503]
    assert refused, "no request was refused while the service was stopped"
    assert all(c.ok or c.status == 503 for c in stopped), describe(stopped)
    assert all("is not running (service state: Stop" in c.detail for c in refused), refused[0].detail
    assert resumed["Replicas"] == 1
