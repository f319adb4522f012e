"""commercetools-shaped error bodies (`ErrorResponse` / `AuthErrorResponse`) and the exception that
carries them out of the request handlers."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    """Raised anywhere below a handler; the app turns it into the JSON body real commercetools sends."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None,
                 auth_error: str | None = None, error_description: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors if errors is not None else [{"code": "General", "message": message}]
        self.auth_error = auth_error
        self.error_description = error_description

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"statusCode": self.status, "message": self.message, "errors": self.errors}
        if self.auth_error is not None:
            # AuthErrorResponse = ErrorResponse + `error` (+ optional `error_description`).
            body["error"] = self.auth_error
            if self.error_description is not None:
                body["error_description"] = self.error_description
        return body

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def invalid_input(message: str) -> ApiError:
    return ApiError(400, message, [{"code": "InvalidInput", "message": message}])


def malformed(param: str, problem: str) -> ApiError:
    """The real API's wording for unparseable query parameters: `Malformed parameter: where: ...`."""
    return invalid_input(f"Malformed parameter: {param}: {problem}")


def invalid_operation(message: str) -> ApiError:
    return ApiError(400, message, [{"code": "InvalidOperation", "message": message}])


def required_field(field: str) -> ApiError:
    message = f"The field '{field}' cannot be empty."
    return ApiError(400, message, [{"code": "RequiredField", "message": message, "field": field}])


def duplicate_field(field: str, value: Any, conflicting_id: str | None = None) -> ApiError:
    message = f"A duplicate value '\"{value}\"' exists for field '{field}'."
    error: dict[str, Any] = {"code": "DuplicateField", "message": message, "field": field,
                             "duplicateValue": value}
    if conflicting_id:
        error["conflictingResource"] = {"typeId": "customer", "id": conflicting_id}
    return ApiError(400, message, [error])


def not_found(resource_label: str) -> ApiError:
    message = f"The Resource with ID '{resource_label}' was not found."
    return ApiError(404, message, [{"code": "ResourceNotFound", "message": message}])


def concurrent_modification(resource_id: str, expected: int, actual: int) -> ApiError:
    message = (f"Object {resource_id} has a different version than expected. "
               f"Expected: {expected} - Actual: {actual}.")
    return ApiError(409, message, [{"code": "ConcurrentModification", "message": message,
                                    "currentVersion": actual}])


def invalid_token() -> ApiError:
    # Byte-for-byte the shape of the official AuthErrorResponse.json example.
    return ApiError(401, "invalid_token", [{"code": "invalid_token", "message": "invalid_token"}],
                    auth_error="invalid_token")


def insufficient_scope(scopes: list[str]) -> ApiError:
    message = f"Insufficient scope. One of the following scopes is missing: {', '.join(scopes)}"
    return ApiError(403, message, [{"code": "insufficient_scope", "message": message}],
                    auth_error="insufficient_scope")


def fault_body(status: int) -> dict[str, Any]:
    """Bodies for injected faults, as the real platform answers them (503 is `OverCapacity`)."""
    messages = {
        500: ("General", "Write operations are temporarily unavailable"),
        502: ("General", "Bad Gateway"),
        503: ("OverCapacity", "The service is temporarily over capacity. Please retry."),
        504: ("General", "Gateway Timeout"),
        429: ("General", "Too Many Requests"),
    }
    code, message = messages.get(status, ("General", f"Injected sandbox error {status}"))
    return {"statusCode": status, "message": message, "errors": [{"code": code, "message": message}]}
