"""PNGs of the console's main pages, from a demo server (`make screenshots`).

Starts a `tcdeploy server` on a free loopback port with its state in a temporary dir, registers a
small iris model, deploys it with MLflow's deployment client (a long group name, to show the pages
keep their layout), adds a second version with an inference table through the console's form,
splits the traffic 50/50, sends some traffic, restarts a replica twice, and saves each page at a
laptop's size:

    python examples/screenshots.py docs/console
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tcdeploy.server.background import BackgroundServer, free_port
from tcdeploy.server.console.browser import launch_chromium

MODEL = "wine-quality-classifier"
GROUP = "wine-quality-scoring-for-the-retail-recommendation-pipeline"
VIEWPORT = {"width": 1366, "height": 860}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tcdeploy-screenshots-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        server = BackgroundServer(
            port=free_port(),
            data_dir=data_dir,
            tracking_uri=f"sqlite:///{data_dir}/mlflow.db",
            secret_id="AKID" + secrets.token_hex(16),
            secret_key=secrets.token_urlsafe(32),
        ).start()
        try:
            group_id = deploy(server)
            shoot(server, group_id, out)
        finally:
            server.stop()
    print(f"saved {len(list(out.glob('*.png')))} screenshots in {out}")


def deploy(server: BackgroundServer) -> str:
    """Register the model and deploy it with MLflow's deployment client; the group's id."""
    import mlflow
    from mlflow.deployments import get_deploy_client
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    os.environ.update(server.client_env())
    mlflow.set_tracking_uri(server.tracking_uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("screenshots", (server.data_dir / "art").as_uri()))
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=200).fit(X, y)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            model, name="model", registered_model_name=MODEL, signature=infer_signature(X, model.predict(X))
        )
    client = get_deploy_client(server.target)
    created = client.create_deployment(GROUP, f"models:/{MODEL}/1", config={"replicas": 2})
    print(f"deployed {GROUP}: {created['status']}")
    return created["service_group_id"]


def shoot(server: BackgroundServer, group_id: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    console = server.url + "/console"
    group = f"{console}/w/default/groups/{group_id}"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(60_000)
        page.goto(console + "/")
        snap(page, out, "login")
        page.fill("#secret_id", server.secret_id)
        page.fill("#secret_key", server.secret_key)
        page.click("button[type=submit]")
        page.wait_for_url("**/groups")

        # A second version through the form, with an inference table; then a 50/50 split.
        page.goto(f"{console}/w/default/groups/new?group={group_id}")
        page.fill("#name", "wine-quality-v2")
        page.fill("#description", "retrained on the 2026 harvest")
        page.select_option("#model", f"{MODEL}/1")
        page.check("input[name=inference_table]")
        snap(page, out, "create-form")
        page.click("#create-form button[type=submit]")
        wait_running(page, group)
        page.goto(group + "?tab=traffic")
        page.locator("input[data-weight]").nth(1).fill("50")
        page.locator("input[data-weight]").nth(1).dispatch_event("input")
        page.click("#weights-form button[type=submit]")
        snap(page, out, "traffic")

        load(server, group_id)
        restart_twice(page, console, group)

        page.goto(f"{console}/w/default/groups")
        snap(page, out, "groups")
        page.goto(group)
        snap(page, out, "group")
        page.goto(group + "?tab=auth")
        snap(page, out, "auth")
        page.goto(group)
        page.locator("#versions tbody tr a").first.click()
        snap(page, out, "version")
        page.goto(group + "/monitor")
        page.wait_for_selector("#charts[data-loaded='1']")
        snap(page, out, "monitoring")
        page.goto(group + "/events")
        snap(page, out, "events")
        page.goto(group + "/logs")
        snap(page, out, "logs")
        page.goto(group + "/debug")
        page.click("#debug-form button[type=submit]")
        snap(page, out, "debug")
        page.goto(group + "/table")
        snap(page, out, "inference-table", full_page=False)  # its 100 rows, whole, were a 1.8 MB PNG
        browser.close()


def wait_running(page, group: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    page.goto(group)
    while page.locator("#versions .status.RUNNING").count() < 2:
        if time.monotonic() > deadline:
            sys.exit(f"the versions did not reach RUNNING: {page.inner_text('#versions')}")
        time.sleep(1)
        page.reload()


def load(server: BackgroundServer, group_id: str, seconds: float = 20) -> None:
    """A little traffic (some of it bad input, answered 400) for the charts and the table."""
    good = {"dataframe_split": {"columns": IRIS, "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}}
    bad = {"dataframe_split": {"columns": IRIS[:2], "data": [[1, 2]]}}
    url = f"{server.url}/groups/{group_id}/predict"
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=30) as client:
        i = 0
        while time.monotonic() < deadline:
            body = bad if i % 25 == 0 else good
            client.post(url, content=json.dumps(body), headers={"content-type": "application/json"})
            i += 1
            time.sleep(0.02)
    print(f"sent {i} requests")


def restart_twice(page, console: str, group: str) -> None:
    """Restart the first version's first replica twice from its page (a folded event)."""
    page.goto(group)
    page.locator("#versions tbody tr a").first.click()
    page.on("dialog", lambda dialog: dialog.accept())
    for _ in range(2):
        page.locator("#pods tbody tr").first.locator("button", has_text="Restart").click()
        page.wait_for_load_state()
        time.sleep(6)  # the replica comes back before the next restart


def snap(page, out: Path, name: str, *, full_page: bool = True) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / f"{name}.png"), full_page=full_page)
    print(f"  {name}.png")


IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]

if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console"))
