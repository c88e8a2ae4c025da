"""``client.tokens``: bearer tokens with scopes; stored hashed, shown once."""

from __future__ import annotations

from stoa.client._operation import Resource, operation
from stoa.core.tokens import NewToken, TokenInfo


class Tokens(Resource):
    name = "tokens"

    @operation("POST", "/tokens", scope="admin", status=201)
    def create(self, name: str, scopes: list[str] | None = None) -> NewToken:
        """A new token (default scope ``read``); its secret is in this answer only."""
        local = self._local
        return local.tokens.create(name, ["read"] if scopes is None else scopes, actor=local.actor)

    @operation("GET", "/tokens", scope="admin")
    def list(self) -> list[TokenInfo]:
        return self._local.tokens.list()

    @operation("DELETE", "/tokens/{token_id}", scope="admin")
    def revoke(self, token_id: str) -> TokenInfo:
        local = self._local
        return local.tokens.revoke(token_id, actor=local.actor)
