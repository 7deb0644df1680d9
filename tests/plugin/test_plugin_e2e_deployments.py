"""Deployments end to end: a real server, real replicas, a registered sklearn model.

One deployment is created for the module and taken through its life in order: serve, inspect,
predict, read logs, update, stop/resume, scale, delete.
"""

from __future__ import annotations

import contextlib
import io
import uuid

import numpy as np
import pytest
from mlflow.deployments import PredictionsResponse
from mlflow.exceptions import MlflowException

from .plugin_e2e import CONSTANT, unique, wait_until


@pytest.fixture(scope="module")
def created(client, registered_model):
    """(create_deployment's reply, what it printed on stderr); deleted after the module."""
    name = unique("dep")
    progress = io.StringIO()
    with contextlib.redirect_stderr(progress):
        reply = client.create_deployment(name, f"models:/{registered_model}/1")
    try:
        yield reply, progress.getvalue()
    finally:
        client.delete_deployment(reply["service_id"])


def test_create_blocks_until_running_and_reports_progress(created):
    reply, progress = created
    assert reply["flavor"] == "python_function"
    # The real API's ids: the group a bare UUID, the service <group id>-<n>.
    assert uuid.UUID(reply["service_group_id"]) and reply["service_id"] == f"{reply['service_group_id']}-1"
    assert reply["status"] == "RUNNING" and reply["ready_replicas"] == reply["replicas"] == 1
    assert reply["url"].startswith("http://127.0.0.1:")
    assert reply["endpoint"] == reply["name"]  # a group named after the deployment
    assert f"{reply['name']} ({reply['service_id']}): RUNNING, 1/1 replicas ready" in progress
    assert "NEW" in progress


def test_get_by_name_and_by_id(client, created):
    reply, _ = created
    by_name = client.get_deployment(reply["name"])
    by_id = client.get_deployment(reply["service_id"], endpoint=reply["endpoint"])
    assert by_name["service_id"] == by_id["service_id"] == reply["service_id"]
    assert by_name["name"] == reply["name"] and by_name["pods"][0]["ready"] is True
    assert by_name["ml_model_info"]["version"] == "1"


def test_every_listed_deployment_can_be_fetched_by_its_name(client, created):
    reply, _ = created
    listed = client.list_deployments()
    assert reply["service_id"] in [d["service_id"] for d in listed]
    for item in listed:
        assert {"name", "service_id", "service_group_id"} <= set(item)
        assert client.get_deployment(item["name"])["service_id"] == item["service_id"]
    in_endpoint = client.list_deployments(endpoint=reply["service_group_id"])
    assert [d["service_id"] for d in in_endpoint] == [reply["service_id"]]


def test_predictions_equal_the_models_own(client, created, iris, logistic_predictions):
    reply, _ = created
    X, _ = iris
    response = client.predict(reply["name"], X)
    assert isinstance(response, PredictionsResponse)
    assert response["predictions"] == logistic_predictions
    assert response.get_predictions(predictions_format="ndarray").tolist() == logistic_predictions


@pytest.mark.parametrize("form", ["records", "split-dict", "group-id", "service-id", "invocations"])
def test_every_input_form_and_way_to_name_it(client, created, iris, logistic_predictions, form):
    reply, _ = created
    X = iris[0].head(5)
    expected = logistic_predictions[:5]
    name, endpoint = reply["name"], None
    inputs = {"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}}
    if form == "records":
        inputs = {"dataframe_records": X.to_dict(orient="records")}
    elif form == "group-id":
        name = reply["service_group_id"]
    elif form == "service-id":
        name = reply["service_id"]
    elif form == "invocations":
        endpoint = "/invocations"
    assert client.predict(name, inputs, endpoint=endpoint)["predictions"] == expected


def test_predict_by_endpoint_alone_as_the_cli_does(client, created, iris, logistic_predictions):
    reply, _ = created
    assert client.predict(None, iris[0].head(3), endpoint=reply["endpoint"])["predictions"] == logistic_predictions[:3]


def test_bad_input_raises_with_the_models_message(client, created, iris):
    reply, _ = created
    frame = iris[0].head(2).drop(columns=[iris[0].columns[0]])
    with pytest.raises(MlflowException) as info:
        client.predict(reply["name"], frame)
    assert "HTTP 400" in str(info.value) and iris[0].columns[0] in str(info.value)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_pod_logs_shell_and_restart(client, created):
    reply, _ = created
    pod = client.get_deployment(reply["service_id"])["pods"][0]["pod_name"]
    logs = client.get_pod_logs(reply["service_id"], pod)
    assert logs["logs"] and {"message", "pod_name", "timestamp"} <= set(logs["logs"][0])
    assert {entry["pod_name"] for entry in logs["logs"]} == {pod}
    first = client.get_pod_logs(reply["name"], pod[:6] + "*", limit=1)
    assert len(first["logs"]) == 1 and first["context"]
    second = client.get_pod_logs(reply["name"], pod[:6] + "*", limit=1, context=first["context"])
    assert second["logs"] and second["logs"][0] != first["logs"][0]

    shell = client.debug_pod_shell(reply["service_id"], pod)
    assert shell["url"].startswith("http://127.0.0.1:")

    assert client.restart_pod(reply["service_id"], pod)["request_id"]
    restarted = wait_until(lambda: _ready_after_restart(client, reply["service_id"]), timeout=180)
    assert restarted["pods"][0]["restart_count"] >= 1


def _ready_after_restart(client, service_id):
    detail = client.get_deployment(service_id)
    pods = detail["pods"]
    if detail["status"] == "RUNNING" and pods and pods[0]["ready"] and pods[0]["restart_count"] >= 1:
        return detail
    return None


def test_update_to_a_new_model_blocks_until_it_serves(client, created, registered_model, iris):
    reply, _ = created
    updated = client.update_deployment(reply["name"], model_uri=f"models:/{registered_model}/2")
    assert updated["status"] == "RUNNING" and updated["ml_model_info"]["version"] == "2"
    assert client.predict(reply["name"], iris[0].head(4))["predictions"] == [CONSTANT] * 4


def test_update_settings_keeps_the_rest(client, created):
    reply, _ = created
    updated = client.update_deployment(reply["name"], config={"service_description": "v2 of iris"})
    assert updated["service_description"] == "v2 of iris" and updated["replicas"] == 1
    assert updated["ml_model_info"]["version"] == "2"


def test_stop_resume_and_scale(client, created):
    reply, _ = created
    stopped = client.update_deployment(reply["name"], config={"service_action": "STOP"})
    assert stopped["status"] == "STOPPED"
    resumed = client.update_deployment(reply["name"], config={"service_action": "RESUME"})
    assert resumed["status"] == "RUNNING" and resumed["ready_replicas"] == 1
    scaled = client.update_deployment(reply["name"], config={"service_action": "SCALE", "replicas": "2"})
    assert scaled["status"] == "RUNNING" and scaled["ready_replicas"] == scaled["replicas"] == 2


def test_delete_is_idempotent_and_removes_the_group_made_for_it(client, registered_model):
    name = unique("gone")
    reply = client.create_deployment(name, f"models:/{registered_model}/2", config={"wait": False})
    assert reply["status"] in ("NEW", "RUNNING")
    client.delete_deployment(name)
    client.delete_deployment(name)
    client.delete_deployment(reply["service_id"])
    with pytest.raises(MlflowException) as info:
        client.get_deployment(name)
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert name not in [e["name"] for e in client.list_endpoints()]


def test_a_model_that_cannot_load_fails_the_create_with_reason_and_logs(client, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: tcdeploy_no_such_loader_module\n")
    name = unique("broken")
    try:
        with pytest.raises(MlflowException) as info:
            client.create_deployment(name, str(broken), config={"timeout": 180})
        message = str(info.value)
        assert "CREATE_FAILED" in message and name in message
        assert "tcdeploy_no_such_loader_module" in message
        assert info.value.error_code == "INVALID_STATE"
    finally:
        client.delete_deployment(name)


def test_a_directory_that_is_not_a_model_is_refused_at_once(client, tmp_path):
    (tmp_path / "README").write_text("no MLmodel here")
    with pytest.raises(MlflowException) as info:
        client.create_deployment(unique("nomodel"), str(tmp_path))
    assert info.value.error_code == "INVALID_PARAMETER_VALUE" and "MLmodel" in str(info.value)


@pytest.mark.parametrize(
    "model_uri, code, fragment",
    [
        ("models:/no-such-model-anywhere/1", "RESOURCE_DOES_NOT_EXIST", "not in the registry"),
        ("/no/such/model/dir", "RESOURCE_DOES_NOT_EXIST", "does not exist"),
        ("https://example.com/model", "INVALID_PARAMETER_VALUE", "scheme 'https'"),
        ("models:/iris", "INVALID_PARAMETER_VALUE", "models:/<name>/<version>"),
    ],
)
def test_bad_model_uris(client, model_uri, code, fragment):
    with pytest.raises(MlflowException) as info:
        client.create_deployment(unique("bad"), model_uri)
    assert info.value.error_code == code and fragment in str(info.value)


def test_unknown_version_lists_the_known_ones(client, registered_model):
    with pytest.raises(MlflowException, match=r"versions: 1, 2|versions: 2, 1"):
        client.create_deployment(unique("bad"), f"models:/{registered_model}/99")


def test_bad_config_and_names(client, registered_model):
    uri = f"models:/{registered_model}/1"
    with pytest.raises(MlflowException, match="known keys: .*instance_type"):
        client.create_deployment(unique("bad"), uri, config={"gpus": "1"})
    with pytest.raises(MlflowException, match="not an integer"):
        client.create_deployment(unique("bad"), uri, config={"replicas": "many"})
    with pytest.raises(MlflowException, match="deployment name"):
        client.create_deployment("bad name!", uri)
    with pytest.raises(MlflowException, match="known keys: none"):
        client.delete_deployment("whatever", config={"force": "true"})


def test_a_taken_name_is_refused_by_the_server(client, created, registered_model):
    reply, _ = created
    with pytest.raises(MlflowException) as info:
        client.create_deployment(reply["name"], f"models:/{registered_model}/1")
    assert info.value.error_code == "RESOURCE_ALREADY_EXISTS" and "RequestId" in str(info.value)


def test_unknown_names(client):
    for call in (
        lambda: client.get_deployment("no-such-deployment"),
        lambda: client.update_deployment("no-such-deployment", config={"replicas": 1}),
        lambda: client.get_endpoint("no-such-endpoint"),
        lambda: client.predict("no-such-deployment", [[1, 2, 3, 4]]),
    ):
        with pytest.raises(MlflowException) as info:
            call()
        assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_instance_types(client):
    specs = client.list_instance_types()
    assert specs and {"spec_name", "spec_alias", "spec_type", "available", "available_region", "gpu_type"} <= set(
        specs[0]
    )
    assert all(s["spec_type"] == "CPU" for s in client.list_instance_types(spec_type="cpu"))
    assert client.list_instance_types(spec_type="GPU") == [s for s in specs if s["spec_type"] == "GPU"]


def test_wrong_secret_key_is_unauthenticated(server_env, tcdeploy_server, monkeypatch):
    from mlflow.deployments import get_deploy_client

    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "not-the-key")
    with pytest.raises(MlflowException) as info:
        get_deploy_client(tcdeploy_server.target).list_deployments()
    assert info.value.error_code == "UNAUTHENTICATED"
    assert "AuthFailure.SignatureFailure" in str(info.value) and "not-the-key" not in str(info.value)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDnobodyknows")
    with pytest.raises(MlflowException, match="AuthFailure.SecretIdNotFound"):
        get_deploy_client(tcdeploy_server.target).list_endpoints()


def test_credentials_from_the_servers_data_dir(server_env, tcdeploy_server, monkeypatch):
    from mlflow.deployments import get_deploy_client

    monkeypatch.delenv("TENCENTCLOUD_SECRET_ID")
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY")
    monkeypatch.setenv("TCDEPLOY_DATA_DIR", str(tcdeploy_server.data_dir))
    if not (tcdeploy_server.data_dir / "credentials.json").exists():
        pytest.fail("the server wrote no credentials.json into its data dir")
    assert isinstance(get_deploy_client(tcdeploy_server.target).list_endpoints(), list)


@pytest.mark.parametrize("inputs", [np.ones((2, 4), dtype=np.float32), [[1.0, 2.0, 3.0, 4.0]]])
def test_arrays_and_lists_reach_the_model_as_inputs(client, created, inputs):
    # As with `mlflow models serve`: unnamed tensors do not satisfy a column signature, and the
    # model's own message comes back.
    reply, _ = created
    with pytest.raises(MlflowException, match="missing inputs"):
        client.predict(reply["name"], inputs)
