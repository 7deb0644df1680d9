"""SSRF checks on relative URLs and the model-URI checks the server shares."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcdeploy.protocol.urls import validate_model_uri, validate_relative_url


@pytest.mark.parametrize(
    "url, expected",
    [
        ("/predict", "/predict"),
        ("predict", "/predict"),
        ("/invocations", "/invocations"),
        ("/v1/models/iris/predict", "/v1/models/iris/predict"),
        ("/predict%2Dv2", "/predict-v2"),  # harmless encoding decodes to a plain path
    ],
)
def test_plain_relative_paths_pass_and_are_normalised(url, expected):
    assert validate_relative_url(url) == expected


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://evil.com/predict", "absolute URL"),
        ("https://evil.com", "absolute URL"),
        ("file:///etc/passwd", "absolute URL"),
        ("gopher:evil", "absolute URL"),
        ("//evil.com/predict", "'//'"),
        ("///evil.com", "'//'"),
        ("\\\\evil.com\\predict", "backslash"),
        ("/\\evil.com", "backslash"),
        ("\\/evil.com", "backslash"),
        ("/predict@evil.com", "'@'"),
        ("@evil.com", "'@'"),
        ("%2f%2fevil.com", "'//'"),
        ("%2F%2Fevil.com", "'//'"),
        ("%252f%252fevil.com", "'//'"),  # double encoding
        ("/%5cevil.com", "backslash"),
        ("/predict%40evil.com", "'@'"),
        ("/%2e%2e/internal", "'..'"),
        ("/%252e%252e/internal", "'..'"),
        ("/../internal", "'..'"),
        ("/predict/../../admin", "'..'"),
        ("..", "'..'"),
        ("/predict\r\nHost: evil.com", "control characters"),
        ("/predict%0d%0aHost:%20evil", "control characters"),
        ("/predict%250d%250a", "control characters"),
        ("/predict\x00", "control characters"),
        ("/pre\tdict", "control characters"),
        ("/predict%00", "control characters"),
        ("%25252e%25252e", "more than 3 times"),
        ("/predict?next=http://evil", "absolute URL"),
        ("/predict?x=1", "only '/'-separated"),
        ("/predict#frag", "only '/'-separated"),
        ("/a//b", "only '/'-separated"),
        ("/prédict", "only '/'-separated"),
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("/" + "a" * 300, "longer than"),
    ],
)
def test_ssrf_tricks_are_refused_with_the_reason(url, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        validate_relative_url(url)


def test_a_non_string_url_is_refused():
    with pytest.raises(ValueError, match="non-empty string"):
        validate_relative_url(None)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
    | st.from_regex(r"[/%@.\\:a-z0-9]{0,30}", fullmatch=True)
)
def test_whatever_passes_is_a_plain_path(url):
    try:
        path = validate_relative_url(url)
    except ValueError:
        return
    assert re.fullmatch(r"(/[A-Za-z0-9._~-]+)+/?", path)
    assert ".." not in path.split("/")


@pytest.mark.parametrize(
    "uri",
    [
        "runs:/0123456789abcdef/model",
        "models:/iris/1",
        "models:/iris@champion",
        "models:/main.default.iris/3",
        "models:/m-0123456789abcdef",
        "mlflow-artifacts:/1/abc/artifacts/model",
        "file:///tmp/models/iris",
        "file://localhost/tmp/models/iris",
        "/tmp/models/iris",
        "/tmp/models/with space",
    ],
)
def test_model_uris_the_server_may_load(uri):
    assert validate_model_uri(uri) == uri


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("http://example.com/model", "scheme 'http'"),
        ("https://example.com/model", "scheme 'https'"),
        ("ftp://example.com/model", "scheme 'ftp'"),
        ("s3://bucket/model", "scheme 's3'"),
        ("gs://bucket/model", "scheme 'gs'"),
        ("hdfs://nn/model", "scheme 'hdfs'"),
        ("dbfs:/model", "scheme 'dbfs'"),
        ("runs://user:pw@host/abc/model", "credentials"),
        ("mlflow-artifacts://user@host:5000/x", "credentials"),
        ("mlflow-artifacts://host:5000/x", "names a host"),
        ("models://profile/iris/1", "names a host"),
        ("file://evil.com/etc/passwd", "remote host"),
        ("file:relative/path", "file:///absolute/path"),
        ("models:/", "no path"),
        ("relative/model", "relative"),
        ("./model", "relative"),
        ("model", "relative"),
        ("/tmp/../etc/passwd", "'..'"),
        ("file:///tmp/%2e%2e/etc", "'..'"),
        ("runs:/abc/../../x", "'..'"),
        ("/tmp/model\n", "control characters"),
        ("/tmp/mo\x00del", "control characters"),
        ("", "non-empty"),
    ],
)
def test_model_uris_that_are_refused(uri, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        validate_model_uri(uri)


def test_credentials_never_appear_in_the_message():
    with pytest.raises(ValueError) as info:
        validate_model_uri("https://alice:s3cr3t@example.com/model")
    assert "s3cr3t" not in str(info.value)
    assert "***@example.com" in str(info.value)
