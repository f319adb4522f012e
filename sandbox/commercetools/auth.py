"""OAuth 2.0 client-credentials tokens (`POST /oauth/token`) and the bearer/scope check on API calls."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass, field

from .errors import ApiError, insufficient_scope, invalid_token

VIEW_SCOPES = ("view_customers", "view_orders", "view_payments", "view_messages", "view_stores",
               "view_customer_groups", "view_project_settings")
MANAGE_SCOPES = ("manage_customers", "manage_orders", "manage_payments")

# Scopes that grant each resource (any one suffices). Carts are read with the orders scope;
# `view_orders` for messages is deprecated but still accepted by the platform.
READ_SCOPES = {
    "customers": ("view_customers", "manage_customers"),
    "customer-groups": ("view_customers", "view_customer_groups", "manage_customers"),
    "orders": ("view_orders", "manage_orders"),
    "carts": ("view_orders", "manage_orders"),
    "payments": ("view_payments", "manage_payments"),
    "messages": ("view_messages", "view_orders"),
    "stores": ("view_stores", "manage_stores"),
    "project": ("view_project_settings", "manage_project_settings"),
}
WRITE_SCOPES = {
    "customers": ("manage_customers",),
    "orders": ("manage_orders",),
    "carts": ("manage_orders",),
    "payments": ("manage_payments",),
}


@dataclass
class Token:
    scopes: frozenset[str]
    expires_at: float


@dataclass
class TokenIssuer:
    project_key: str
    client_id: str
    client_secret: str
    lifetime: int = 172_800
    tokens: dict[str, Token] = field(default_factory=dict)
    issued: int = 0

    @property
    def client_scopes(self) -> list[str]:
        names = ("manage_project", *VIEW_SCOPES, *MANAGE_SCOPES)
        return [f"{name}:{self.project_key}" for name in names]

    def _client_error(self, status: int, error: str, description: str) -> ApiError:
        return ApiError(status, description, [{"code": error, "message": description}],
                        auth_error=error, error_description=description)

    def issue(self, authorization: str | None, grant_type: str | None, scope: str | None) -> dict[str, object]:
        client = self._basic(authorization)
        if client != (self.client_id, self.client_secret):
            raise self._client_error(401, "invalid_client", "Please provide valid client credentials using "
                                                             "HTTP Basic Authentication.")
        if grant_type != "client_credentials":
            raise self._client_error(400, "unsupported_grant_type",
                                     f"Unsupported grant type '{grant_type or ''}'. Use client_credentials.")
        allowed = self.client_scopes
        requested = scope.split() if scope and scope.strip() else allowed
        unknown = [s for s in requested if s not in allowed]
        if unknown:
            raise self._client_error(400, "invalid_scope", f"Invalid scope(s): {' '.join(unknown)}")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = Token(frozenset(requested), time.time() + self.lifetime)
        self.issued += 1
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime,
                "scope": " ".join(requested)}

    @staticmethod
    def _basic(authorization: str | None) -> tuple[str, str] | None:
        if not authorization or not authorization.lower().startswith("basic "):
            return None
        try:
            raw = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = raw.partition(":")
        return (user, password) if sep else None

    def check(self, authorization: str | None, project_key: str, resource: str, write: bool) -> None:
        """Raise 401 invalid_token or 403 insufficient_scope as the API does."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise invalid_token()
        token = self.tokens.get(authorization[7:].strip())
        if token is None or token.expires_at <= time.time():
            raise invalid_token()
        if project_key != self.project_key:
            raise insufficient_scope([f"view_project_settings:{project_key}"])
        if f"manage_project:{project_key}" in token.scopes:
            return
        options = (WRITE_SCOPES if write else READ_SCOPES).get(resource, ())
        wanted = [f"{name}:{project_key}" for name in options]
        if not any(s in token.scopes for s in wanted):
            raise insufficient_scope(wanted or [f"manage_project:{project_key}"])

    def expire_all(self) -> int:
        count = len(self.tokens)
        for token in self.tokens.values():
            token.expires_at = 0.0
        return count
