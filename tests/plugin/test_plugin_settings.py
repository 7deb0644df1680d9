"""Target URIs, the host allow-list, credentials and workspace resolution."""

from __future__ import annotations

import json
import re

import pytest
from mlflow.exceptions import MlflowException

from tcdeploy.plugin.settings import Settings, parse_target, resolve_credentials, resolve_workspace

SEED = {"KERNEL_WEDATA_CLOUD_SDK_SECRET_ID": "AKIDseed", "KERNEL_WEDATA_CLOUD_SDK_SECRET_KEY": "seed-key"}
SDK = {"TENCENTCLOUD_SECRET_ID": "AKIDsdk", "TENCENTCLOUD_SECRET_KEY": "sdk-key"}


# ---- targets ---------------------------------------------------------------------------------------


def test_bare_target_is_the_cloud_in_the_default_region():
    target = parse_target("tcdeploy", {})
    assert (target.scheme, target.wedata_endpoint, target.tione_endpoint, target.region) == (
        "https",
        "wedata.tencentcloudapi.com",
        "tione.tencentcloudapi.com",
        "ap-guangzhou",
    )
    assert not target.is_local and not target.is_self_hosted


@pytest.mark.parametrize(
    "env, region",
    [
        ({"KERNEL_WEDATA_REGION": "ap-beijing"}, "ap-beijing"),
        ({"TENCENTCLOUD_REGION": "ap-shanghai"}, "ap-shanghai"),
        ({"KERNEL_WEDATA_REGION": "ap-beijing", "TENCENTCLOUD_REGION": "ap-shanghai"}, "ap-beijing"),
    ],
)
def test_region_comes_from_the_environment(env, region):
    assert parse_target("tcdeploy", env).region == region


def test_region_in_the_uri_wins():
    target = parse_target("tcdeploy:/na-siliconvalley", {"KERNEL_WEDATA_REGION": "ap-beijing"})
    assert target.region == "na-siliconvalley" and target.scheme == "https"


@pytest.mark.parametrize("uri", ["tcdeploy:/Not A Region", "tcdeploy:/ap-guangzhou/extra"])
def test_bad_region_is_refused(uri):
    with pytest.raises(MlflowException, match="region"):
        parse_target(uri, {})


@pytest.mark.parametrize(
    "uri, endpoint",
    [
        ("tcdeploy://127.0.0.1:8600", "127.0.0.1:8600"),
        ("tcdeploy://localhost:9000", "localhost:9000"),
        ("tcdeploy://127.0.0.1", "127.0.0.1:8600"),
        ("tcdeploy://LOCALHOST:8600/", "localhost:8600"),
        ("tcdeploy://[::1]:8600", "[::1]:8600"),
    ],
)
def test_loopback_targets_are_local_over_http(uri, endpoint):
    target = parse_target(uri, {})
    assert target.scheme == "http" and target.is_local and target.is_self_hosted
    assert target.wedata_endpoint == target.tione_endpoint == endpoint


@pytest.mark.parametrize(
    "uri",
    [
        "tcdeploy://10.0.0.5:8600",
        "tcdeploy://evil.com",
        "tcdeploy://169.254.169.254",
        "tcdeploy://tencentcloudapi.com.evil.com",
        "tcdeploy://127.0.0.2:8600",
    ],
)
def test_other_hosts_are_refused_with_the_reason(uri):
    with pytest.raises(MlflowException) as info:
        parse_target(uri, {})
    message = str(info.value)
    assert "refused" in message and "TCDEPLOY_ALLOWED_HOSTS" in message
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("allowed", ["10.0.0.5", "10.0.0.5:8600", " other.example , 10.0.0.5 "])
def test_allow_listed_hosts_are_accepted(allowed):
    target = parse_target("tcdeploy://10.0.0.5:8600", {"TCDEPLOY_ALLOWED_HOSTS": allowed})
    assert target.scheme == "http" and target.wedata_endpoint == "10.0.0.5:8600"
    assert target.is_self_hosted and not target.is_local


def test_allow_list_entry_with_port_only_allows_that_port():
    with pytest.raises(MlflowException, match="refused"):
        parse_target("tcdeploy://10.0.0.5:9999", {"TCDEPLOY_ALLOWED_HOSTS": "10.0.0.5:8600"})


def test_cloud_host_in_the_uri_goes_over_https():
    target = parse_target("tcdeploy://wedata.internal.tencentcloudapi.com", {})
    assert target.scheme == "https"
    assert target.wedata_endpoint == "wedata.internal.tencentcloudapi.com"
    assert target.tione_endpoint == "tione.internal.tencentcloudapi.com"


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("tcdeploy://user:pw@127.0.0.1:8600", "credentials"),
        ("tcdeploy://127.0.0.1:8600/api", "no path"),
        ("tcdeploy://127.0.0.1:8600?x=1", "query"),
        ("mlflow://127.0.0.1:8600", "not a tcdeploy target"),
        ("tcdeploy://127.0.0.1:notaport", "host[:port]"),
    ],
)
def test_malformed_targets(uri, problem):
    with pytest.raises(MlflowException, match=re.escape(problem)):
        parse_target(uri, {})


def test_endpoint_override_must_stay_in_the_cloud_domains():
    env = {"TENCENTCLOUD_ENDPOINT": "wedata.internal.tencentcloudapi.com"}
    target = parse_target("tcdeploy", env)
    assert (target.wedata_endpoint, target.tione_endpoint) == (
        "wedata.internal.tencentcloudapi.com",
        "tione.internal.tencentcloudapi.com",
    )
    assert (
        parse_target("tcdeploy", {"TENCENTCLOUD_ENDPOINT": "api.tencentcloud.com"}).tione_endpoint
        == "api.tencentcloud.com"
    )


@pytest.mark.parametrize(
    "override, problem",
    [
        ("evil.com", "not under"),
        ("tencentcloudapi.com.evil.com", "not under"),
        ("eviltencentcloudapi.com", "not under"),
        ("https://wedata.tencentcloudapi.com", "bare host"),
        ("wedata.tencentcloudapi.com/path", "bare host"),
        ("user@wedata.tencentcloudapi.com", "credentials"),
    ],
)
def test_endpoint_override_outside_the_cloud_is_refused(override, problem):
    with pytest.raises(MlflowException, match=problem):
        parse_target("tcdeploy", {"TENCENTCLOUD_ENDPOINT": override})


def test_endpoint_override_may_be_allow_listed():
    env = {"TENCENTCLOUD_ENDPOINT": "gateway.corp:8443", "TCDEPLOY_ALLOWED_HOSTS": "gateway.corp:8443"}
    assert parse_target("tcdeploy", env).wedata_endpoint == "gateway.corp:8443"


# ---- credentials ---------------------------------------------------------------------------------

LOCAL = parse_target("tcdeploy://127.0.0.1:8600", {})
CLOUD = parse_target("tcdeploy", {})


def test_seed_variables_come_first():
    creds = resolve_credentials(CLOUD, {**SDK, **SEED, "KERNEL_WEDATA_CLOUD_SDK_SECRET_TOKEN": "tok"})
    assert (creds.secret_id, creds.secret_key, creds.token) == ("AKIDseed", "seed-key", "tok")


def test_sdk_variables_with_session_token():
    creds = resolve_credentials(CLOUD, {**SDK, "TENCENTCLOUD_SESSION_TOKEN": "sts"})
    assert (creds.secret_id, creds.secret_key, creds.token) == ("AKIDsdk", "sdk-key", "sts")


def test_missing_credentials_name_the_variables():
    with pytest.raises(MlflowException) as info:
        resolve_credentials(CLOUD, {})
    message = str(info.value)
    for name in (
        "KERNEL_WEDATA_CLOUD_SDK_SECRET_ID",
        "KERNEL_WEDATA_CLOUD_SDK_SECRET_KEY",
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
    ):
        assert name in message
    assert "TCDEPLOY_DATA_DIR" not in message  # a cloud target has no credentials file


def test_half_a_pair_names_the_missing_half():
    with pytest.raises(MlflowException, match="TENCENTCLOUD_SECRET_KEY"):
        resolve_credentials(CLOUD, {"TENCENTCLOUD_SECRET_ID": "AKIDsdk"})
    with pytest.raises(MlflowException, match="KERNEL_WEDATA_CLOUD_SDK_SECRET_ID"):
        resolve_credentials(CLOUD, {"KERNEL_WEDATA_CLOUD_SDK_SECRET_KEY": "k"})


def test_local_target_reads_the_servers_credentials_file(tmp_path):
    (tmp_path / "credentials.json").write_text(json.dumps({"SecretId": "AKIDfile", "SecretKey": "file-key"}))
    creds = resolve_credentials(LOCAL, {"TCDEPLOY_DATA_DIR": str(tmp_path)})
    assert (creds.secret_id, creds.secret_key) == ("AKIDfile", "file-key")


def test_credentials_file_with_a_list_of_keys_uses_the_first(tmp_path):
    keys = {"Keys": [{"SecretId": "AKIDfirst", "SecretKey": "k1"}, {"SecretId": "AKIDsecond", "SecretKey": "k2"}]}
    (tmp_path / "credentials.json").write_text(json.dumps(keys))
    assert resolve_credentials(LOCAL, {"TCDEPLOY_DATA_DIR": str(tmp_path)}).secret_id == "AKIDfirst"


def test_local_target_defaults_to_the_data_dir_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / ".tcdeploy").mkdir()
    (tmp_path / ".tcdeploy" / "credentials.json").write_text('{"SecretId": "AKIDcwd", "SecretKey": "k"}')
    monkeypatch.chdir(tmp_path)
    assert resolve_credentials(LOCAL, {}).secret_id == "AKIDcwd"


def test_environment_beats_the_credentials_file(tmp_path):
    (tmp_path / "credentials.json").write_text('{"SecretId": "AKIDfile", "SecretKey": "k"}')
    assert resolve_credentials(LOCAL, {**SDK, "TCDEPLOY_DATA_DIR": str(tmp_path)}).secret_id == "AKIDsdk"


def test_cloud_target_ignores_the_credentials_file(tmp_path):
    (tmp_path / "credentials.json").write_text('{"SecretId": "AKIDfile", "SecretKey": "k"}')
    with pytest.raises(MlflowException, match="no credentials"):
        resolve_credentials(CLOUD, {"TCDEPLOY_DATA_DIR": str(tmp_path)})


@pytest.mark.parametrize("content", ["not json", "[]", '{"SecretId": "x"}', '{"Keys": []}'])
def test_broken_credentials_file_says_so(tmp_path, content):
    (tmp_path / "credentials.json").write_text(content)
    with pytest.raises(MlflowException, match="credentials"):
        resolve_credentials(LOCAL, {"TCDEPLOY_DATA_DIR": str(tmp_path)})


def test_missing_local_credentials_mention_the_data_dir(tmp_path):
    with pytest.raises(MlflowException, match="TCDEPLOY_DATA_DIR"):
        resolve_credentials(LOCAL, {"TCDEPLOY_DATA_DIR": str(tmp_path)})


def test_secrets_never_show_in_reprs():
    settings = Settings.from_target("tcdeploy://127.0.0.1:8600", {**SDK, "TENCENTCLOUD_SESSION_TOKEN": "sts-secret"})
    for text in (repr(settings), str(settings), repr(settings.credentials)):
        assert "sdk-key" not in text and "sts-secret" not in text
        assert "AKIDsdk" in text


# ---- workspace and numbers -------------------------------------------------------------------------


def test_workspace_defaults_to_default_locally_and_is_required_on_the_cloud():
    assert resolve_workspace(LOCAL, {}) == "default"
    assert resolve_workspace(CLOUD, {"WEDATA_WORKSPACE_ID": "ws-1"}) == "ws-1"
    with pytest.raises(MlflowException, match="WEDATA_WORKSPACE_ID"):
        resolve_workspace(CLOUD, {})


def test_timeouts_and_attempts_from_the_environment():
    env = {**SDK, "TCDEPLOY_REQUEST_TIMEOUT": "5", "TCDEPLOY_MAX_ATTEMPTS": "1"}
    settings = Settings.from_target("tcdeploy://127.0.0.1:8600", env)
    assert (settings.request_timeout, settings.max_attempts) == (5.0, 1)
    with pytest.raises(MlflowException, match="TCDEPLOY_REQUEST_TIMEOUT"):
        Settings.from_target("tcdeploy://127.0.0.1:8600", {**SDK, "TCDEPLOY_REQUEST_TIMEOUT": "soon"})
