"""Run by the oldest supported client stack (mlflow-skinny 3.10): deploy, predict, delete.

argv: target, model directory. Credentials come from the environment.
"""

import sys

from mlflow.deployments import get_deploy_client

target, model_dir = sys.argv[1], sys.argv[2]
client = get_deploy_client(target)
created = client.create_deployment("compat-iris", model_dir, config={"replicas": 1})
assert created["status"] == "RUNNING", created
row = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}
reply = client.predict("compat-iris", {"dataframe_records": [row]})
assert reply["predictions"] == [0], reply
assert "compat-iris" in [d["name"] for d in client.list_deployments()]
client.delete_deployment("compat-iris")
print("COMPAT OK", __import__("mlflow").__version__)
