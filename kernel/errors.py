"""The error tree. Packages raise these; the boundary (CLI, HTTP) turns them into messages."""


from enum import StrEnum


class CBError(Exception):
    """Base of every error the community brain raises on purpose."""


class Reason(StrEnum):
    """Why an action was refused; the HTTP layer maps each to its status (app/http/errors.py)."""

    NOT_FOUND = "not_found"  # no such thing, or not in the caller's scope
    FORBIDDEN = "forbidden"  # the caller may not do this
    CONFLICT = "conflict"  # the thing's state does not allow it
    INVALID = "invalid"  # the request does not fit
    UNAVAILABLE = "unavailable"  # a part the action needs does not answer


class Refused(CBError):
    """An action the domain refuses, with its reason and a message in words."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigError(CBError):
    """A configuration file or environment override is invalid; the message is one line."""

    def __init__(self, message: str) -> None:
        # A key or value quoted from the file may hold line breaks; they are shown escaped.
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


class StoreError(CBError):
    """A reading store refused or could not take a batch."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s


class BadPointError(StoreError):
    """The store rejected at least one point of a batch as malformed (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, status=400)
