"""The console's browser tests: one real server for the session (with a second key, limited to
another workspace), Debian's Chromium driven by Playwright, and a page logged in per test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tcdeploy.server.console.browser import CHROMIUM, launch_chromium
from tests.security.security_estate import Key, add_key
from tests.server.control.wedata_calls import running_service
from tests.support.cloudapi import call, common_client
from tests.support.models import register_model
from tests.support.server import SECRET_ID, SECRET_KEY, BackgroundServer, start_server

OTHER_WORKSPACE = "team-console"
MODEL = "console-iris"


@dataclass(frozen=True)
class Console:
    server: BackgroundServer
    other_key: Key  # may act in OTHER_WORKSPACE only

    @property
    def url(self) -> str:
        return self.server.url + "/console"


@pytest.fixture(scope="session")
def console(tmp_path_factory) -> Console:
    data_dir = tmp_path_factory.mktemp("console") / "data"
    other = add_key(data_dir, OTHER_WORKSPACE)
    server = start_server(data_dir)
    try:
        register_model(server.tracking_uri, MODEL)
        yield Console(server, other)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def wedata(console):
    return common_client(console.server, "wedata")


@pytest.fixture(scope="session")
def running(wedata, logistic_model_dir) -> dict:
    """A running service (one replica) made through the API, for the pages that watch one."""
    detail = running_service(wedata, "console-watched", logistic_model_dir)
    on = {"WorkspaceId": "default", "ServiceGroupId": detail["ServiceGroupId"], "InferenceTableCollectionEnabled": True}
    call(wedata, "UpdateServiceGroupMonitorConfig", on)
    return detail


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (make venv does it as root)")
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra)").sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


def log_in(browser, console: Console, secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(console.url + "/")
    page.fill("#secret_id", secret_id)
    page.fill("#secret_key", secret_key)
    page.click("button[type=submit]")
    page.wait_for_url("**/groups")
    return page


@pytest.fixture
def page(browser, console):
    page = log_in(browser, console)
    try:
        yield page
    finally:
        page.context.close()
