"""TI-ONE calls through the official SDK's `TioneClient`, each reply checked against its model."""

from __future__ import annotations

import json
import time
import warnings

from tencentcloud.common.abstract_model import AbstractModel
from tencentcloud.tione.v20211111 import models

from tcdeploy.protocol.states import ServiceStatus, tione_word
from tcdeploy.protocol.tione import reply_mismatches

from .cloudapi import tione_client

NORMAL = tione_word(ServiceStatus.RUNNING)
STOPPED = tione_word(ServiceStatus.STOPPED)
FAILED = {tione_word(ServiceStatus.CREATE_FAILED), tione_word(ServiceStatus.ABNORMAL)}


def sdk_call(server, action: str, body: dict) -> AbstractModel:
    """Call `action` with the SDK's request model and client; the reply must parse with its
    response model without a member left over (the SDK warns of those: here they fail) and with
    every value of the type the model declares."""
    request = getattr(models, f"{action}Request")()
    request.from_json_string(json.dumps(body))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reply = getattr(tione_client(server), action)(request)
    data = json.loads(reply.to_json_string())
    data.pop("RequestId", None)
    assert reply_mismatches(action, data) == []
    return reply


def wait_for(server, service_id: str, wanted: set[str], timeout: float = 120) -> models.Service:
    deadline = time.monotonic() + timeout
    while True:
        service = sdk_call(server, "DescribeModelService", {"ServiceId": service_id}).Service
        if service.Status in wanted:
            return service
        if service.Status in FAILED or time.monotonic() > deadline:
            raise AssertionError(f"{service_id} is {service.Status}, not {wanted}: {service.ServiceInfo.Status.Reason}")
        time.sleep(0.3)
