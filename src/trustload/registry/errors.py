"""Errors the Registry answers with: ``{"error": {"code", "message"}}`` (docs/registry-api.md)."""

from __future__ import annotations


class ApiError(Exception):
    """An HTTP error with one of the contract's codes."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def auth_failed(message: str) -> ApiError:
    return ApiError(401, "AUTH_FAILED", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "FORBIDDEN", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "CONFLICT", message)


def bad_request(message: str, status: int = 400) -> ApiError:
    return ApiError(status, "BAD_REQUEST", message)
