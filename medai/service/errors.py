"""Errors the service answers with an HTTP status and a message that says what to do.

Messages never quote patient data: they name fields, files and limits, not values read from records.
"""

from __future__ import annotations

from medai.errors import MedaiError


class ServiceError(MedaiError):
    """An error with an HTTP status; ``str(error)`` is the message sent to the client."""

    status_code = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.headers = headers


class BadRequest(ServiceError):
    status_code = 400


class Unauthorized(ServiceError):
    status_code = 401

    def __init__(self, message: str):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class PayloadTooLarge(ServiceError):
    status_code = 413


class UnsupportedMediaType(ServiceError):
    status_code = 415


class Unprocessable(ServiceError):
    status_code = 422


class TooManyRequests(ServiceError):
    status_code = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ModelUnavailable(ServiceError):
    """A registered bundle that cannot be used now (failed integrity check, missing dependency)."""

    status_code = 503
