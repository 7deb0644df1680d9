"""Group auth tokens: auth on and off, tokens made, renamed, reset and deleted.

Token values are never stored: the store holds their digests (`token_hash`), the value is derived
from the server secret whenever it is shown. A mixin of `Backend`: it uses the backend's store,
reconciler, secret and workspace-scoped `group` lookup.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from tcdeploy.protocol.errors import ResourceNotFound

from ...store import GroupRecord, TokenRecord
from .ids import new_id
from .secrets import token_hash


@dataclass(frozen=True)
class TokenView:
    record: TokenRecord
    value: str


class TokenRules:
    def enable_auth(self, group_id: str) -> None:
        """Switch auth on; a group with auth on and no token would lock everyone out, so make one."""
        with self.store.transaction():
            self.store.set_group_auth(group_id, True)
            if not self.store.tokens(group_id):
                self._insert_token(group_id, "default", "")
        self.reconciler.publish_group(group_id)

    def set_auth(self, workspace: str, group_ref: str, enabled: bool) -> GroupRecord:
        group = self.group(workspace, group_ref)
        if enabled:
            self.enable_auth(group.id)
        else:
            self.store.set_group_auth(group.id, False)
            self.reconciler.publish_group(group.id)
        return self.store.group(group.id)

    def create_token(self, workspace: str, group_ref: str, name: str, description: str = "") -> TokenView:
        group = self.group(workspace, group_ref)
        token = self._insert_token(group.id, name, description)
        self.reconciler.publish_group(group.id)
        return TokenView(token, self.secret.token_value(token.id))

    def delete_token(self, workspace: str, group_ref: str, value: str) -> None:
        """Delete the group's token with this value (compared by digest, in constant time)."""
        group = self.group(workspace, group_ref)
        self.store.delete_token(self._token_by_value(group.id, value).id)
        self.reconciler.publish_group(group.id)

    def _token_by_value(self, group_id: str, value: str) -> TokenRecord:
        wanted = token_hash(value)
        match = None
        for token in self.store.tokens(group_id):
            if secrets.compare_digest(token.digest, wanted):
                match = token
        if match is None:
            raise ResourceNotFound("auth token", "(the given value)")
        return match

    def tokens(self, group_id: str) -> list[TokenView]:
        return [TokenView(t, self.secret.token_value(t.id)) for t in self.store.tokens(group_id)]

    def _insert_token(self, group_id: str, name: str, description: str) -> TokenRecord:
        token_id = new_id("tok")
        token = TokenRecord(
            token_id, group_id, name, description, token_hash(self.secret.token_value(token_id)), time.time()
        )
        self.store.insert_token(token)
        return token

    def update_token(
        self,
        workspace: str,
        group_ref: str,
        value: str,
        *,
        name: str | None = None,
        description: str | None = None,
        reset: bool = False,
        limits: list[dict] | None = None,
    ) -> TokenView:
        """Rename or redescribe the group's token with this value; `reset` gives it a new value
        (the old one is refused from then on). `limits` are kept in the group's settings
        (`AuthTokenLimits`, by token id) and act on nothing yet."""
        group = self.group(workspace, group_ref)
        old = self._token_by_value(group.id, value)
        token_id = new_id("tok") if reset else old.id
        token = TokenRecord(
            token_id,
            group.id,
            name or old.name,
            old.description if description is None else description,
            token_hash(self.secret.token_value(token_id)),
            old.created,
        )
        kept = dict(group.spec.get("AuthTokenLimits", {}))
        previous = kept.pop(old.id, None)
        kept[token_id] = previous if limits is None else limits
        if kept[token_id] is None:
            del kept[token_id]
        with self.store.transaction():
            self.store.delete_token(old.id)
            self.store.insert_token(token)
            self.store.update_group(group.id, spec={**group.spec, "AuthTokenLimits": kept})
        self.reconciler.publish_group(group.id)
        return TokenView(token, self.secret.token_value(token_id))
