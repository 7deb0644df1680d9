"""Ids as the real API makes them.

- a service group: a bare UUID (`ef16f77c-fd0b-48a9-bc77-da8714f0d31e`);
- a service (a version in a group): `<group uuid>-<n>`, n its version number in the group;
- a pod: TI-ONE's `ms-<8 chars>-<n>-<10 hex>-<5 chars>` (`ms-6mvp5w9v-1-6d49b68644-j8jjs`), where the
  8 chars name the service for good (derived from its id) and the tail is new for each pod;
- anything else (tokens, request ids): an opaque random id.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid

_ALPHABET = string.ascii_lowercase + string.digits


def new_group_id() -> str:
    return str(uuid.uuid4())


def service_id(group_id: str, version: int) -> str:
    return f"{group_id}-{version}"


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def pod_prefix(service_id: str) -> str:
    """What every pod name of this service starts with (and no other service's does)."""
    digest = hashlib.sha256(service_id.encode()).digest()
    short = "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:8])
    version = service_id.rsplit("-", 1)[-1]
    return f"ms-{short}-{version if version.isdigit() else '1'}-"


def new_pod_name(service_id: str) -> str:
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(5))
    return f"{pod_prefix(service_id)}{secrets.token_hex(5)}-{tail}"
