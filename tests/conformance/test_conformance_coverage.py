"""Every model-service action of the reference has a handler, and docs/wire.md's generated block
is what the schema, the request models, `protocol/effects` and the action table say today."""

from __future__ import annotations

import pytest

from tcdeploy.protocol.apis import WEDATA
from tcdeploy.protocol.schema import wedata

pytestmark = pytest.mark.conformance


def test_every_model_service_action_of_the_reference_has_a_handler():
    from tcdeploy.server.control.api.table import unanswered

    missing = sorted(
        {name for service, name in unanswered() if service == WEDATA} & set(wedata().actions_of("model-service"))
    )
    assert missing == [], f"{len(missing)} model-service actions answer InvalidAction: {', '.join(missing)}"


def test_every_model_service_action_has_a_request_model_from_the_schema():
    from tcdeploy.protocol.wedata import MODELS

    assert set(wedata().actions_of("model-service")) - set(MODELS) == set()


def test_the_members_named_accepted_no_effect_are_members_of_the_schema():
    from tcdeploy.server.wiredoc import unknown_paths

    assert unknown_paths() == []


def test_the_committed_wire_md_table_is_the_generated_one():
    from tcdeploy.server.wiredoc import WIRE_MD, block, committed_block

    committed = committed_block(WIRE_MD.read_text(encoding="utf-8"))
    assert committed is not None, "docs/wire.md has no generated block"
    assert committed == block(), "docs/wire.md is stale: run `python -m tcdeploy.server.wiredoc --write`"
