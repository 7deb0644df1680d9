"""The console's sessions: who is logged in, since when, and the CSRF token of every change.

A session is a cookie signed with a key derived from the server secret (itsdangerous), holding the
SecretId it was opened with and a random nonce; it is HttpOnly, SameSite=Strict, and expires
(`SESSION_TTL`): the signature carries its time, so an old cookie is refused however it is kept.
Nothing is stored server-side but the nonces of sessions logged out before they expired, so a
copied cookie dies with its logout too. The CSRF token is an HMAC of the nonce: a page carries it
in its forms, and every request that changes something must send it back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..settings import AccessKey

COOKIE = "tcdeploy_console"
SESSION_TTL = 8 * 3600  # seconds: a working day
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    key: AccessKey
    nonce: str
    csrf_token: str

    def allows(self, workspace: str) -> bool:
        return self.key.allows(workspace)

    @property
    def workspaces(self) -> tuple[str, ...]:
        return self.key.workspaces


class Sessions:
    """Opens, reads and closes console sessions for the server's access keys."""

    def __init__(self, keys: Mapping[str, AccessKey], signing_key: bytes, ttl: int = SESSION_TTL) -> None:
        self._keys = keys
        self._signing_key = signing_key
        self._serializer = URLSafeTimedSerializer(signing_key, salt="tcdeploy-console-session")
        self.ttl = ttl
        self._closed: dict[str, float] = {}  # nonce -> when its cookie expires anyway

    def login(self, secret_id: str, secret_key: str) -> str | None:
        """A new session cookie's value for a valid key pair, else None. Both halves are compared
        in constant time, and an unknown SecretId costs the same comparison as a known one."""
        key = self._keys.get(secret_id)
        expected = key.secret_key if key else secrets.token_urlsafe(32)
        if not hmac.compare_digest(expected.encode(), secret_key.encode()) or key is None:
            return None
        return self._serializer.dumps({"k": key.secret_id, "n": secrets.token_urlsafe(16)})

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None if it is missing, forged, expired, logged out, or
        its key is no longer one of the server's."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.ttl)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("n"), str):
            return None
        key = self._keys.get(data.get("k", ""))
        if key is None or data["n"] in self._closed:
            return None
        return Session(key, data["n"], self._csrf(data["n"]))

    def logout(self, session: Session) -> None:
        now = time.time()
        self._closed = {n: t for n, t in self._closed.items() if t > now}  # forget the expired ones
        self._closed[session.nonce] = now + self.ttl

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(session.csrf_token.encode(), token.encode())

    def _csrf(self, nonce: str) -> str:
        return hmac.new(self._signing_key, f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()
