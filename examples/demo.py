"""The whole product in one run, on the embedded defaults.

Starts `tcdeploy server` (127.0.0.1:8600, data in ./.tcdeploy), trains and registers a small sklearn
model, deploys it with MLflow's deployment client, predicts, shows status and pod logs, then deletes
the deployment and stops the server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

PORT = 8600
DATA_DIR = Path(".tcdeploy").resolve()
TARGET = f"tcdeploy://127.0.0.1:{PORT}"
MODEL_NAME = "iris-demo"


def start_server() -> subprocess.Popen:
    if _healthy():
        sys.exit(f"something already answers on 127.0.0.1:{PORT}; stop it first")
    print(f"$ tcdeploy server   (data dir {DATA_DIR})")
    server = subprocess.Popen([sys.executable, "-m", "tcdeploy", "server", "--data-dir", str(DATA_DIR)])
    deadline = time.monotonic() + 60
    while not _healthy():
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit("the server did not start")
        time.sleep(0.2)
    return server


def _healthy() -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def register_model(tracking_uri: str) -> str:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y)
    mlflow.set_tracking_uri(tracking_uri)
    # Keep the model's files in the data dir rather than in ./mlruns.
    if mlflow.get_experiment_by_name("tcdeploy-demo") is None:
        mlflow.create_experiment("tcdeploy-demo", artifact_location=(DATA_DIR / "artifacts").as_uri())
    mlflow.set_experiment("tcdeploy-demo")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=MODEL_NAME,
            signature=infer_signature(X, model.predict(X)),
            # MLflow >= 3.17 stores sklearn models with skops, which must be told to trust trees.
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    print(f"registered {MODEL_NAME} version {info.registered_model_version}")
    return str(info.registered_model_version)


def main() -> None:
    DATA_DIR.mkdir(exist_ok=True)
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DATA_DIR / 'mlflow.db'}"
    os.environ["TCDEPLOY_DATA_DIR"] = str(DATA_DIR)  # the client reads the server's credentials here
    server = start_server()
    try:
        from mlflow.deployments import get_deploy_client
        from sklearn.datasets import load_iris

        version = register_model(tracking_uri)
        client = get_deploy_client(TARGET)
        if MODEL_NAME in [d["name"] for d in client.list_deployments()]:  # left by an interrupted run
            client.delete_deployment(MODEL_NAME)

        print("\ninstance types:", [t["spec_name"] for t in client.list_instance_types()])
        deployment = client.create_deployment(MODEL_NAME, f"models:/{MODEL_NAME}/{version}", config={"replicas": 1})
        print("\ndeployed:", {k: deployment[k] for k in ("name", "service_id", "status", "url")})

        print(
            f"\nconsole: http://127.0.0.1:{PORT}/console — log in with the SecretId and SecretKey in "
            f"{DATA_DIR / 'credentials.json'} (or TCDEPLOY_SECRET_ID/TCDEPLOY_SECRET_KEY if you set them)"
        )

        X, _ = load_iris(return_X_y=True, as_frame=True)
        sample = X.iloc[[0, 50, 100]]
        print("\npredictions for rows 0, 50, 100:", client.predict(MODEL_NAME, sample)["predictions"])

        status = client.get_deployment(MODEL_NAME)
        pod = status["pods"][0]
        print(f"\nstatus: {status['status']}; pod {pod['pod_name']} {pod['phase']}, restarts {pod['restart_count']}")
        logs = client.get_pod_logs(status["service_id"], pod["pod_name"], limit=5)
        print("pod logs:")
        for line in logs["logs"]:
            print(f"  {line['timestamp']}  {line['message']}")

        client.delete_deployment(MODEL_NAME)  # and the endpoint made for it, now empty
        print("\ndeleted the deployment and its endpoint")
    finally:
        server.terminate()
        server.wait(60)
        print("server stopped")
    print(
        f"\nWhat this did: started `tcdeploy server` (state in {DATA_DIR}), registered {MODEL_NAME} "
        f"version {version} in its MLflow registry, deployed it with MLflow's deployment client "
        f"(target {TARGET}), predicted three rows, read its status and pod logs, deleted it and "
        "stopped the server. `make clean` removes what it left; README.md does the same step by step."
    )


if __name__ == "__main__":
    main()
