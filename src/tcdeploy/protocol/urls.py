"""Validation of caller-supplied paths and URIs before they reach a server.

Both functions are pure (no I/O, no environment) so the self-hosted server can reuse them for
what arrives over the wire. They raise ``ValueError`` with a message that names the problem;
callers map it to their own error type.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["validate_relative_url", "validate_model_uri"]

# Enough rounds to unwrap any encoding a legitimate caller would produce; input that still
# changes after this many decodes is hiding something.
_MAX_DECODE_ROUNDS = 3
_MAX_URL_LENGTH = 256
_MAX_URI_LENGTH = 4096
_SAFE_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+/?$")
_MODEL_URI_SCHEMES = ("runs", "models", "mlflow-artifacts", "file")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")


def _has_control_characters(text: str) -> bool:
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)


def _decoded_forms(text: str) -> list[str]:
    """The text and every distinct result of percent-decoding it again, in order."""
    forms = [text]
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            return forms
        forms.append(decoded)
    raise ValueError(f"is percent-encoded more than {_MAX_DECODE_ROUNDS} times over")


def _refuse_url_tricks(form: str) -> None:
    if _has_control_characters(form):
        raise ValueError("contains control characters (CR, LF, NUL, tab, ...)")
    if "\\" in form:
        raise ValueError("contains a backslash, which some servers read as '/'")
    if "://" in form or urlsplit(form).scheme:
        raise ValueError("must be a relative path, not an absolute URL")
    if form.startswith("//"):
        raise ValueError("starts with '//', which names another host")
    if "@" in form:
        raise ValueError("contains '@', which can redirect to another host")
    if ".." in form.split("/"):
        raise ValueError("contains a '..' segment")


def validate_relative_url(url: str) -> str:
    """Check a relative URL such as ``/predict`` and return it normalised (leading ``/``).

    Refuses absolute URLs, ``//host``, backslashes, ``@``, ``..`` segments, control characters,
    and any of these hidden behind (repeated) percent-encoding. What remains must be a plain
    path of ``[A-Za-z0-9._~-]`` segments.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("relative URL must be a non-empty string")
    if len(url) > _MAX_URL_LENGTH:
        raise ValueError(f"relative URL is longer than {_MAX_URL_LENGTH} characters")
    try:
        forms = _decoded_forms(url)
        for form in forms:
            _refuse_url_tricks(form)
    except ValueError as exc:
        raise ValueError(f"unsafe relative URL {url!r}: {exc}") from None
    path = forms[-1] if forms[-1].startswith("/") else "/" + forms[-1]
    if not _SAFE_PATH.match(path):
        raise ValueError(
            f"unsafe relative URL {url!r}: only '/'-separated segments of letters, digits "
            "and '._~-' are allowed (no query, fragment, '//' or encoded characters)"
        )
    return path


def _shown(uri: str) -> str:
    """The URI as it may appear in an error message: any 'user:password@' masked."""
    return repr(_USERINFO.sub(r"\1***@", uri))


def _split(uri: str):
    try:
        return urlsplit(uri)
    except ValueError as exc:  # e.g. an unbalanced '[' read as an IPv6 host
        raise ValueError(f"model URI {_shown(uri)} is malformed: {exc}") from None


def _refuse_dot_dot(uri: str, path: str) -> None:
    try:
        forms = _decoded_forms(path)
    except ValueError as exc:
        raise ValueError(f"model URI {_shown(uri)} {exc}") from None
    for form in forms:
        if ".." in form.replace("\\", "/").split("/"):
            raise ValueError(f"model URI {_shown(uri)} contains a '..' segment")


def _check_scheme_uri(uri: str, scheme: str) -> None:
    if scheme not in _MODEL_URI_SCHEMES:
        raise ValueError(
            f"model URI {_shown(uri)} uses scheme {scheme!r}; only "
            "runs:/, models:/, mlflow-artifacts:/, file:/// and absolute local paths are "
            "allowed (network schemes such as http, https, ftp or s3 are refused)"
        )
    parts = _split(uri)
    if "@" in parts.netloc:
        raise ValueError(f"model URI {_shown(uri)} carries credentials ('user@host')")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"model URI {_shown(uri)} names a remote host; use file:///absolute/path")
        if not parts.path.startswith("/"):
            raise ValueError(f"model URI {_shown(uri)} must be file:///absolute/path")
    elif parts.netloc:
        raise ValueError(
            f"model URI {_shown(uri)} names a host or profile ({parts.netloc!r}); write it as {scheme}:/<path>"
        )
    if not parts.path.strip("/"):
        raise ValueError(f"model URI {_shown(uri)} has no path after the scheme")
    _refuse_dot_dot(uri, parts.path)


def validate_model_uri(uri: str) -> str:
    """Check a model location the server will load, and return it unchanged.

    Allowed: ``runs:/``, ``models:/``, ``mlflow-artifacts:/`` (no host), ``file:///abs`` and
    absolute local paths. Refused: other schemes (``http(s)``, ``ftp``, ``s3``, ...),
    credentials, control characters, ``..`` segments and relative paths.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError("model URI must be a non-empty string")
    if len(uri) > _MAX_URI_LENGTH:
        raise ValueError(f"model URI is longer than {_MAX_URI_LENGTH} characters")
    if _has_control_characters(uri):
        raise ValueError(f"model URI {_shown(uri)} contains control characters")
    scheme = _split(uri).scheme.lower()
    if scheme:
        _check_scheme_uri(uri, scheme)
        return uri
    if "://" in uri:
        raise ValueError(f"model URI {_shown(uri)} is not a valid URI")
    if not uri.startswith("/"):
        raise ValueError(
            f"model path {_shown(uri)} is relative; pass an absolute path (the server does not "
            "share the client's working directory)"
        )
    _refuse_dot_dot(uri, uri)
    return uri
