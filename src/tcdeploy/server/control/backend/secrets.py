"""Everything derived from the server secret: group token values, short-lived pod links and the
console's session key.

Token values are never stored: a value is an HMAC of its id under the server secret, so the server
can show it back (call info) while the store holds only its digest — the same digest the gateway's
auth compares against (`token_hash`).
"""

from __future__ import annotations

import hashlib
import hmac

from ...gateway.auth import token_hash

__all__ = ["ServerSecret", "token_hash"]


class ServerSecret:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, message: str) -> str:
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()

    def derived_key(self, purpose: str) -> bytes:
        """A key of its own for one `purpose` (the console's session cookies), so no signature
        made for one use can pass for another."""
        return hmac.new(self._secret, f"key:{purpose}".encode(), hashlib.sha256).digest()

    def replica_token(self, pod_name: str) -> str:
        """What a replica reached over TCP (the Ray runtime) checks on every request."""
        return self._mac(f"replica:{pod_name}")

    def token_value(self, token_id: str) -> str:
        return self._mac(f"token:{token_id}")

    def pod_token(self, pod_name: str, expires: int) -> str:
        return f"{expires}.{self._mac(f'pod:{pod_name}:{expires}')}"

    def pod_token_valid(self, pod_name: str, token: str, now: float) -> bool:
        # A minted token is ASCII; anything else would make int() read other scripts' digits and
        # compare_digest raise. Epoch seconds fit in 12 digits; int() refuses very long ones loudly.
        if not token.isascii():
            return False
        expires, _, _mac = token.partition(".")
        if not expires.isdigit() or len(expires) > 12 or int(expires) < now:
            return False
        return hmac.compare_digest(self.pod_token(pod_name, int(expires)), token)
