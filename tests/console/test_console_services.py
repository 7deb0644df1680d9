"""Managing services from the console: create one from a registered model through the form, watch
it run, add a second version and split the traffic."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.support.cloudapi import call

from .conftest import MODEL


def _create(page, console, name: str, group: str | None = None, rps: str = "") -> str:
    page.goto(console.url + "/w/default/groups/new" + (f"?group={group}" if group else ""))
    page.fill("#name", name)
    page.fill("#rps_limit", rps)
    page.select_option("#model", f"{MODEL}/1")
    page.select_option("#instance_type", "TI.S.SMALL.POST")
    page.click("#create-form button[type=submit]")
    page.wait_for_url("**/groups/*-*")
    return page.url.split("/groups/")[1].split("?")[0]


def test_a_service_made_through_the_form_reaches_running(page, console, wedata):
    group_id = _create(page, console, "console-form-made", rps="500")
    assert "Creating console-form-made" in page.inner_text(".flash")
    assert f"models:/{MODEL}/1" in page.inner_text("#versions")
    # The page follows the new version by itself (no reload) until it runs, then stops asking.
    expect(page.locator("#versions")).to_contain_text("RUNNING", timeout=120_000)
    expect(page.locator("#group-title")).to_contain_text("RUNNING", timeout=10_000)
    assert page.locator("#versions-wrap[hx-trigger]").count() == 0
    page.goto(console.url + "/w/default/groups")
    row = page.locator("tr[data-group='console-form-made']")
    assert "RUNNING" in row.inner_text() and "1/1" in row.inner_text()
    # The page made what the API shows.
    group = call(wedata, "GetMLModelServiceGroup", {"WorkspaceId": "default", "ServiceGroupId": group_id})["Data"]
    [service] = group["Services"]
    assert group["ServiceGroupName"] == "console-form-made" and service["Status"] == "RUNNING"
    assert service["ServiceLimit"]["EnableInstanceRpsLimit"] and service["ServiceLimit"]["InstanceRpsLimit"] == 500


def test_the_form_names_the_field_it_refuses(page, console):
    page.goto(console.url + "/w/default/groups/new")
    page.fill("#name", "console-no-model")
    page.click("#create-form button[type=submit]")
    error = page.inner_text(".flash.error")
    assert "MissingParameter" in error and "MlModelInfo" in error
    assert page.input_value("#name") == "console-no-model"  # the form keeps what was typed


def test_a_second_version_and_a_50_50_split(page, console, wedata):
    group_id = _create(page, console, "console-split-a-named-at-length-as-real-pipelines-are")
    _create(page, console, "console-split-b", group=group_id)
    page.goto(f"{console.url}/w/default/groups/{group_id}?tab=traffic")
    inputs = page.locator("input[data-weight]")
    assert inputs.count() == 2
    inputs.nth(1).fill("50")
    inputs.nth(1).dispatch_event("input")
    assert inputs.nth(0).input_value() == "50"  # the other weight follows: they add up to 100
    page.click("#weights-form button[type=submit]")
    assert "Traffic split set to 50 / 50" in page.inner_text(".flash")
    group = call(wedata, "GetMLModelServiceGroup", {"WorkspaceId": "default", "ServiceGroupId": group_id})["Data"]
    assert sorted(s["Weight"] for s in group["Services"]) == [50, 50]
    page.goto(f"{console.url}/w/default/groups/{group_id}")
    assert page.locator("#versions td.traffic").all_inner_texts() == ["50%", "50%"]
    # At a laptop's 1366 px every version's actions are in view: the table needs no sideways scroll.
    wrap = page.locator("#versions").locator("xpath=ancestor::div[contains(@class, 'table-wrap')]")
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth"), "the versions table scrolls sideways"
    # No third version: the group holds two at most, and the page offers none.
    assert page.locator("text=Add version").count() == 0


def test_a_groups_description_and_a_versions_settings_are_edited_in_place(page, console, wedata, running):
    page.goto(f"{console.url}/w/default/groups/{running['ServiceGroupId']}")
    page.fill("#g-description", "scores iris flowers for the console tests")
    page.click("#description-form button[type=submit]")
    assert "Description saved" in page.inner_text(".flash")
    page.goto(console.url + "/w/default/groups")
    assert "scores iris flowers" in page.locator("tr[data-group='console-watched']").inner_text()
    page.goto(f"{console.url}/w/default/services/{running['ServiceId']}")
    page.fill("#u-description", "the watched one")
    page.fill("#u-rps", "1000")
    page.click("#update-form button[type=submit]")
    assert "Update requested" in page.inner_text(".flash")
    assert "1000 requests/s per replica" in page.inner_text("main")
    service = call(wedata, "GetMLModelService", {"WorkspaceId": "default", "ServiceId": running["ServiceId"]})["Data"]
    assert service["Description"] == "the watched one"
    assert service["ServiceLimit"]["EnableInstanceRpsLimit"] and service["ServiceLimit"]["InstanceRpsLimit"] == 1000
