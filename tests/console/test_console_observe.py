"""Watching a running group from the console: online debugging, monitoring charts after load,
folded events, log search and the inference table."""

from __future__ import annotations

import json
import time

import httpx
import pyarrow.parquet

from tests.support.cloudapi import call
from tests.support.models import iris_frame


def _group_page(console, running: dict, tail: str) -> str:
    return f"{console.url}/w/default/groups/{running['ServiceGroupId']}{tail}"


def _load(console, running: dict, requests: int = 20) -> None:
    X, _ = iris_frame()
    body = json.dumps({"dataframe_split": X.iloc[:2].to_dict(orient="split")})
    url = f"{console.server.url}/groups/{running['ServiceGroupId']}/predict"
    with httpx.Client(timeout=30) as client:
        for _ in range(requests):
            assert client.post(url, content=body, headers={"content-type": "application/json"}).status_code == 200


def test_a_debug_request_shows_the_prediction(page, console, running):
    page.goto(_group_page(console, running, "/debug"))
    request = json.loads(page.input_value("#body"))
    # Pre-filled in the WeData form from the model's signature: its four iris columns, one row.
    assert request["client_request_id"] and len(request["dataframe_split"]["columns"]) == 4
    request["dataframe_split"]["data"] = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    page.fill("#body", json.dumps(request))
    page.click("#debug-form button[type=submit]")
    assert page.inner_text("#debug-status") == "200"
    assert json.loads(page.inner_text("#debug-body"))["predictions"] == [0, 2]
    assert "X-Request-Id" in page.inner_text("#debug-result")
    curl = page.inner_text("#curl")
    assert curl.startswith("curl -X POST") and f"/groups/{running['ServiceGroupId']}/predict" in curl


def test_monitoring_draws_qps_and_latency_after_load(page, console, running):
    _load(console, running)
    page.goto(_group_page(console, running, "/monitor"))
    page.wait_for_selector("#charts[data-loaded='1']")
    for title in ("QPS", "Latency"):
        chart = page.locator(f"section.chart[data-chart='{title}']")
        assert int(chart.get_attribute("data-points")) > 0, title
        assert chart.locator("canvas").count() == 1, f"{title} drew no chart"
    # The page draws what the API says: the same request count over the same hour.
    page.select_option("#period", "300")
    page.click("#monitor-form button[type=submit]")
    page.wait_for_selector("section.chart[data-chart='QPS'] canvas")


def test_two_restarts_show_as_one_folded_event_with_a_count(page, console, wedata, running):
    pod = running["PodInfos"][0]["Name"]
    for _ in range(2):
        call(
            wedata,
            "RebuildModelServicePod",
            {"WorkspaceId": "default", "ServiceId": running["ServiceId"], "PodName": pod},
        )
        _wait_ready(wedata, running["ServiceId"])
    page.goto(_group_page(console, running, "/events"))
    rows = page.locator("#events tbody tr", has_text=f"{pod} restart requested")
    assert rows.count() == 1, page.inner_text("#events")
    assert rows.first.locator("td.count").inner_text() == "2"
    assert "Pod" in rows.first.inner_text()


def test_log_search_finds_a_line(page, console, running):
    page.goto(_group_page(console, running, "/logs"))
    lines = page.inner_text("#log-box")
    assert running["PodInfos"][0]["Name"] in lines
    page.fill("#key", "no-such-words-in-any-log")
    page.click("#log-form button[type=submit]")
    page.wait_for_selector("#log-box >> text=No line matches")
    word = _a_logged_word(lines)
    page.fill("#key", word)
    page.click("#log-form button[type=submit]")
    page.wait_for_selector("#log-lines >> text=" + word)
    shown = page.inner_text("#log-box").splitlines()
    assert shown and all(word in line for line in shown if line.strip())


def test_the_inference_table_lists_the_latest_rows_and_downloads(page, console, running):
    _load(console, running, requests=3)
    page.goto(_group_page(console, running, "/table"))
    deadline = time.monotonic() + 15
    while page.locator("#inference tbody tr td.num").count() == 0:  # rows land within a flush
        assert time.monotonic() < deadline, "no inference-table row"
        time.sleep(0.5)
        page.reload()
    assert "200" in page.inner_text("#inference") and "dataframe_split" in page.inner_text("#inference")
    page.goto(_group_page(console, running, "/table?status=error"))  # every row here was a 200
    assert "The latest 0 of 0 rows" in page.inner_text("main")
    page.goto(_group_page(console, running, "/table?status=ok"))
    assert "The latest 0 of" not in page.inner_text("main")
    page.goto(_group_page(console, running, "/table"))
    with page.expect_download() as download:
        page.click("text=Download CSV")
    assert download.value.suggested_filename.endswith(".csv")
    assert "status_code" in open(download.value.path()).read().splitlines()[0]
    with page.expect_download() as download:
        page.click("text=Download Parquet")
    assert download.value.suggested_filename.endswith(".parquet")
    table = pyarrow.parquet.read_table(download.value.path())
    assert table.num_rows >= 1 and 200 in table.column("status_code").to_pylist()


def _wait_ready(wedata, service_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        detail = call(wedata, "GetMLModelService", {"WorkspaceId": "default", "ServiceId": service_id})["Data"]
        if detail["WorkloadStatus"]["ReadyReplicas"] >= 1 and detail["Status"] == "RUNNING":
            return
        assert time.monotonic() < deadline, f"{service_id} not ready again"
        time.sleep(0.3)


def _a_logged_word(lines: str) -> str:
    """A word of some replica line that is not in every line (so a search narrows)."""
    for line in lines.splitlines():
        for word in line.split()[3:]:
            if (
                word.isalpha()
                and len(word) > 4
                and sum(word in other for other in lines.splitlines()) < len(lines.splitlines())
            ):
                return word
    raise AssertionError(f"no word to search for in:\n{lines}")
