"""Property: whatever body any action gets, the reply is the envelope, never an InternalError or a
traceback in the log, and a refused request changes nothing in the store.

Bodies are drawn from each action's own model (security_bodies). They are sent with a key limited
to the `fuzz` workspace, where a group with an idle service (0 replicas) and a token give the
valid-ish ids something real to find; what an accepted request changes stays in that workspace.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tcdeploy.protocol.actions import CATALOGUE

from .security_bodies import request_bytes
from .security_fuzzing import Target, fuzz_pool

EVERY_ACTION = sorted((service, name) for service, actions in CATALOGUE.items() for name in actions)
EXAMPLES_PER_ACTION = 30


@pytest.mark.parametrize("service,action", EVERY_ACTION)
def test_every_reply_is_the_envelope_and_a_refusal_changes_nothing(estate, registered_model, http, service, action):
    target = Target(estate, http, service, action)

    @settings(
        max_examples=EXAMPLES_PER_ACTION,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(body=request_bytes(CATALOGUE[service][action], fuzz_pool(estate, registered_model)))
    def check(body: bytes) -> None:
        target.send(body)

    check()
    assert any(code is not None for code in target.codes), "nothing was refused: the bodies are too tame"
    assert "Traceback" not in target.new_log()
