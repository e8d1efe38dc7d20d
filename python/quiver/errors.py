"""Errors raised by the Quiver Python client.

Every error the server answers is `{"error": "<Name>", "message": "..."}` with a 4xx/5xx
status (docs/api-v1.md). The client raises the subclass of `QuiverError` named after
`error`, so callers can catch exactly what they handle; an unknown name still raises
`QuiverError` with the name kept in `.error`.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "QuiverError", "InvalidArgumentError", "InvalidDimensionError", "DuplicateIDError",
    "QuotaError", "AuthenticationError", "AuthorizationError", "NotFoundError",
    "UniqueConstraintError", "PayloadTooLargeError", "RateLimitError", "InternalError",
    "ProjectPausedError", "ProjectMovedError", "ServiceUnavailableError", "ConnectionError",
    "TimeoutError",
]


class QuiverError(Exception):
    """An error answered by the server, or a failure to reach it.

    `status` is the HTTP status (None when no answer came), `error` the server's error
    name (e.g. `NotFoundError`), `message` its explanation.
    """

    def __init__(self, message: str, *, error: Optional[str] = None,
                 status: Optional[int] = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error or type(self).__name__
        self.status = status
        self.body = body

    def __str__(self) -> str:
        where = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.error}: {self.message}{where}"


class InvalidArgumentError(QuiverError):
    """400: malformed request, bad filter, illegal name, lists of different lengths…"""


class InvalidDimensionError(InvalidArgumentError):
    """400: an embedding whose dimension differs from the collection's."""


class DuplicateIDError(InvalidArgumentError):
    """400: the same id twice in one batch."""


class QuotaError(QuiverError):
    """400: the write would exceed one of the project's quotas; nothing was applied."""


class AuthenticationError(QuiverError):
    """401: no token, or a token the server does not know."""


class AuthorizationError(QuiverError):
    """403: the token is valid but not for this project or operation."""


class NotFoundError(QuiverError):
    """404: unknown project or collection."""


class UniqueConstraintError(QuiverError):
    """409: a collection of that name already exists."""


class PayloadTooLargeError(QuiverError):
    """413: the request body is above the server's limit."""


class RateLimitError(QuiverError):
    """429: too many requests for this project right now."""


class InternalError(QuiverError):
    """500: the server failed (a write that fails this way was not applied)."""


class ProjectPausedError(QuiverError):
    """503: the project's writes are paused for a move; retry shortly."""


class ProjectMovedError(QuiverError):
    """503: the project moved to another server."""


class ServiceUnavailableError(QuiverError):
    """503 for another reason (a shard is down, the server is shutting down…)."""


class ConnectionError(QuiverError):  # noqa: A001 - the module's own, distinct from builtins
    """The server could not be reached (refused, reset, DNS…)."""


class TimeoutError(QuiverError):  # noqa: A001
    """No complete answer within the client's timeout."""


_BY_NAME = {cls.__name__: cls for cls in (
    InvalidArgumentError, DuplicateIDError, QuotaError, AuthenticationError,
    AuthorizationError, NotFoundError, UniqueConstraintError, PayloadTooLargeError,
    RateLimitError, InternalError, ProjectPausedError, ProjectMovedError,
)}
# The server's names that differ from the class names.
_BY_NAME["InvalidDimension"] = InvalidDimensionError
_BY_NAME["InvalidDimensionError"] = InvalidDimensionError

_BY_STATUS = {
    400: InvalidArgumentError,
    401: AuthenticationError,
    403: AuthorizationError,
    404: NotFoundError,
    409: UniqueConstraintError,
    413: PayloadTooLargeError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def from_response(status: int, body: Any, text: str) -> QuiverError:
    """The error for a non-2xx answer: by the server's error name, else by status."""
    name = None
    message = text.strip() or f"HTTP {status}"
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            name = body["error"]
        if isinstance(body.get("message"), str):
            message = body["message"]
    cls = _BY_NAME.get(name or "")
    if cls is None:
        cls = _BY_STATUS.get(status, InternalError if status >= 500 else QuiverError)
    return cls(message, error=name, status=status, body=body)
