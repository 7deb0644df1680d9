"""Logging in to the console, what a session may do, and what it may see."""

from __future__ import annotations

import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.support.cloudapi import call

from .conftest import OTHER_WORKSPACE, log_in

COOKIE = "tcdeploy_console"


def _cookie(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE)


def test_a_wrong_key_is_refused_and_a_good_one_opens_the_group_list(browser, console):
    context = browser.new_context()
    page = context.new_page()
    page.goto(console.url + "/w/default/groups")
    assert "/console/login" in page.url  # no session: the login page
    page.fill("#secret_id", console.server.secret_id)
    page.fill("#secret_key", "not-the-key")
    page.click("button[type=submit]")
    assert "Unknown SecretId or wrong SecretKey" in page.inner_text("main")
    assert not context.cookies()
    page.fill("#secret_id", console.server.secret_id)
    page.fill("#secret_key", console.server.secret_key)
    page.click("button[type=submit]")
    page.wait_for_url("**/w/default/groups")
    assert page.inner_text("h1").startswith("Service groups")
    [cookie] = [c for c in context.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > time.time()
    context.close()


def test_a_logged_out_or_expired_session_is_refused(browser, console):
    page = log_in(browser, console)
    stale = _cookie(page)
    page.click("text=Log out")
    page.wait_for_url("**/login")
    other = browser.new_context()
    other.add_cookies([{"name": COOKIE, "value": stale, "url": console.url + "/"}])
    again = other.new_page()
    again.goto(console.url + "/w/default/groups")
    assert "/console/login" in again.url, "a logged-out session still opened a page"
    # A session signed by the server itself, nine hours ago: past its lifetime.
    key = _signing_key(console)
    signer = URLSafeTimedSerializer(key, salt="tcdeploy-console-session", signer=_NineHoursAgo)
    old = signer.dumps({"k": console.server.secret_id, "n": "x"})
    other.clear_cookies()
    other.add_cookies([{"name": COOKIE, "value": old, "url": console.url + "/"}])
    again.goto(console.url + "/w/default/groups")
    assert "/console/login" in again.url, "an expired session still opened a page"
    reply = again.request.post(console.url + "/w/default/groups/new", form={"name": "x"})
    assert reply.status == 401
    other.close()
    page.context.close()


def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(page, console, wedata, running):
    group_id = running["ServiceGroupId"]
    url = f"{console.url}/w/default/groups/{group_id}/auth"
    for headers in ({}, {"X-CSRF-Token": "0" * 64}):
        reply = page.request.post(url, form={"enable": "1"}, headers=headers)
        assert reply.status == 403 and "CSRF" in reply.text()
    group = call(wedata, "GetMLModelServiceGroup", {"WorkspaceId": "default", "ServiceGroupId": group_id})["Data"]
    assert group["AuthorizationEnable"] is False


def test_a_key_limited_to_another_workspace_sees_none_of_these_groups(browser, console, running):
    page = log_in(browser, console, console.other_key.secret_id, console.other_key.secret_key)
    assert page.url.endswith(f"/w/{OTHER_WORKSPACE}/groups")
    assert "No service group" in page.inner_text("main")
    assert "console-watched" not in page.content()
    reply = page.goto(f"{console.url}/w/default/groups")
    assert reply.status == 403 and "may not see workspace 'default'" in page.inner_text("main")
    reply = page.goto(f"{console.url}/w/{OTHER_WORKSPACE}/groups/{running['ServiceGroupId']}")
    assert reply.status == 400 and "ResourceNotFound" in page.inner_text("main")
    page.context.close()


class _NineHoursAgo(TimestampSigner):
    def get_timestamp(self) -> int:  # itsdangerous' hook for the signing time
        return int(time.time()) - 9 * 3600


def _signing_key(console) -> bytes:
    from tcdeploy.server.control.backend import ServerSecret

    secret = bytes.fromhex((console.server.data_dir / "server-secret").read_text().strip())
    return ServerSecret(secret).derived_key("console-session")
