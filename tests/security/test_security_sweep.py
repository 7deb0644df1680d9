"""The property of test_security_fuzz_actions over a fixed sweep: each field of a simple valid body
of every action in turn set to values that have broken parsers before (other scripts' digits,
5000-digit numbers, NaN and infinities, dates at the ends of the calendar, cursor-like strings)."""

from __future__ import annotations

import pytest

from tcdeploy.protocol.actions import CATALOGUE

from .security_bodies import sweep
from .security_fuzzing import Target, fuzz_pool

EVERY_ACTION = sorted((service, name) for service, actions in CATALOGUE.items() for name in actions)


@pytest.mark.parametrize("service,action", EVERY_ACTION)
def test_every_field_set_to_each_tricky_value(estate, registered_model, http, service, action):
    target = Target(estate, http, service, action)
    for field, body in sweep(CATALOGUE[service][action], fuzz_pool(estate, registered_model)):
        target.send(body, field)
    assert "Traceback" not in target.new_log()
