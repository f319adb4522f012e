"""HubSpot-shaped error bodies and the exception the route handlers raise to send them.

HubSpot's normal error schema is `{status, message, correlationId, category, subCategory?, context?,
errors?}`; the 429 body is different (`errorType`, `policyName`, `groupName`, no `category`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse


def correlation_id() -> str:
    return str(uuid.uuid4())


def error_dict(category: str, message: str, context: dict[str, list[str]] | None = None,
               errors: list[dict[str, Any]] | None = None, sub_category: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": correlation_id(),
                            "category": category}
    if sub_category:
        body["subCategory"] = sub_category
    if context is not None:
        body["context"] = context
    if errors is not None:
        body["errors"] = errors
    return body


class ApiError(Exception):
    """Raised anywhere below a route; the route wrapper turns it into a JSON response."""

    def __init__(self, status: int, category: str, message: str,
                 context: dict[str, list[str]] | None = None,
                 errors: list[dict[str, Any]] | None = None, sub_category: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.context = context
        self.errors = errors
        self.sub_category = sub_category

    def body(self) -> dict[str, Any]:
        return error_dict(self.category, self.message, self.context, self.errors, self.sub_category)

    def batch_error(self, trace_id: str | None = None) -> dict[str, Any]:
        """The shape of one entry of a 207's `errors[]` (no correlationId there)."""
        entry: dict[str, Any] = {"status": "error", "category": self.category, "message": self.message,
                                 "context": dict(self.context or {})}
        if trace_id is not None:
            entry["context"]["objectWriteTraceId"] = [trace_id]
        if self.sub_category:
            entry["subCategory"] = self.sub_category
        if self.errors:
            entry["errors"] = self.errors
        return entry

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def validation(message: str, context: dict[str, list[str]] | None = None,
               errors: list[dict[str, Any]] | None = None) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message, context, errors)


def not_found(message: str, context: dict[str, list[str]] | None = None) -> ApiError:
    return ApiError(404, "OBJECT_NOT_FOUND", message, context)


def conflict(message: str, context: dict[str, list[str]] | None = None) -> ApiError:
    return ApiError(409, "CONFLICT", message, context)


def property_errors(details: list[dict[str, Any]]) -> ApiError:
    """400 "Property values were not valid: [...]": the message embeds a JSON list, as HubSpot's does."""
    legacy = [{"isValid": False, "message": d["message"], "error": d["code"],
               "name": d["context"]["propertyName"][0]} for d in details]
    return validation(f"Property values were not valid: {json.dumps(legacy)}", errors=details)


def unauthorized() -> dict[str, Any]:
    return error_dict("INVALID_AUTHENTICATION",
                      "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                      "and you can find more details at https://developers.hubspot.com/docs/methods/auth/"
                      "oauth-overview")


POLICY_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "DAILY": "You have reached your daily limit.",
    "SECONDLY": "You have reached your secondly limit.",
}
POLICY_GROUPS = {
    "TEN_SECONDLY_ROLLING": "publicapi:private-app-api-ten-secondly",
    "DAILY": "publicapi:private-app-api-daily",
    "SECONDLY": "publicapi:private-app-api-search-secondly",
    "ASSOCIATIONS": "publicapi:private-app-api-associations-ten-secondly",
}


def rate_limit_body(policy: str, portal_id: int, group: str | None = None) -> dict[str, Any]:
    return {"status": "error", "message": POLICY_MESSAGES[policy], "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(), "policyName": policy,
            "groupName": f"{POLICY_GROUPS[group or policy]}:{portal_id}"}


def make_error_body(portal_id: int) -> Callable[[int], dict[str, Any]]:
    """The `error_body(status)` the fault injector uses for the faults it fakes."""

    def error_body(status: int) -> dict[str, Any]:
        return build_error_body(status, portal_id)

    return error_body


def build_error_body(status: int, portal_id: int = 0) -> dict[str, Any]:
    if status == 429:
        return rate_limit_body("TEN_SECONDLY_ROLLING", portal_id)
    if status == 423:
        return error_dict("LOCKED", "The resource is locked by another request; try again in a few seconds.")
    if status == 504:
        return error_dict("INTERNAL_ERROR", "The request timed out while being processed.",
                          sub_category="GATEWAY_TIMEOUT")
    if status >= 500:
        return error_dict("INTERNAL_ERROR", "internal error")
    return error_dict("VALIDATION_ERROR", f"error {status}")


def error_body(status: int) -> dict[str, Any]:
    """Module-level variant for callers without a portal id."""
    return build_error_body(status)
