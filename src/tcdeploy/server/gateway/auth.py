"""Group API keys: `Authorization: <token>` (or `Bearer <token>`) checked against the sha256 hex
digests the control plane stores, never the tokens themselves."""

from __future__ import annotations

import hashlib
import hmac


def token_hash(token: str) -> str:
    """The digest stored for a token value (sha256, lower-case hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def authorized(authorization: str | None, token_hashes: frozenset[str]) -> bool:
    """Whether the Authorization header carries one of the group's tokens.

    Every stored digest is compared, each in constant time, whatever matched: the time taken
    tells nothing about which token (or how much of one) was right.
    """
    if not authorization:
        return False
    token = authorization.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        return False
    digest = token_hash(token).encode("ascii")
    matched = False
    for stored in token_hashes:
        matched |= hmac.compare_digest(digest, stored.lower().encode("ascii", "replace"))
    return matched
