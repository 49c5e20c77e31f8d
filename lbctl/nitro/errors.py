"""lbctl's NITRO error hierarchy, built at one boundary from an HTTP status and a NITRO body.

Callers branch on the class (already exists, no such resource, ...) and read ``errorcode`` for
detail; httpx exceptions never reach them.  Messages name the operation, resource, object,
errorcode and NITRO's own message together, and never carry request bodies (which could hold
credentials).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SESSION_ERRORS = frozenset({444, 452, 471, 1026, 1027})
"""Errorcodes of a 401 that mean "log in again", not "wrong credentials"."""
BAD_CREDENTIALS = frozenset({354, 355, 1025, 352})
ALREADY_EXISTS = frozenset({273, 474, 2133})
NO_SUCH_RESOURCE = frozenset({258, 344, 351, 463})
INVALID_ARGUMENT = frozenset({278, 1074, 1075, 1090, 1091, 1092, 1093, 1095, 1097, 1304})
BULK_FAILED = 1243


@dataclass(frozen=True)
class Operation:
    """What was attempted, for error messages and metrics."""

    verb: str
    resource: str
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f" {self.name}" if self.name else "")


class NitroError(Exception):
    """A NITRO call failed. ``errorcode`` is NITRO's (None when no NITRO body was read)."""

    def __init__(
        self,
        operation: Operation,
        message: str,
        *,
        errorcode: int | None = None,
        severity: str = "ERROR",
        status: int | None = None,
    ) -> None:
        self.operation = operation
        self.message = message
        self.errorcode = errorcode
        self.severity = severity
        self.status = status
        code = f"errorcode {errorcode}: " if errorcode is not None else ""
        http = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{operation}: {code}{message}{http}")


class AlreadyExists(NitroError):
    """273 and kin: the object or binding is already there."""


class NoSuchResource(NitroError):
    """258, 344, 351, 463: the object is not there."""


class InvalidArgument(NitroError):
    """The ADC refused a value or a name; retrying the same request will not help."""


class AuthFailed(NitroError):
    """Credentials refused, or still refused after logging in again."""


class Unavailable(NitroError):
    """The ADC could not be reached or answered 5xx: worth retrying later."""


class MalformedResponse(NitroError):
    """The reply was not a NITRO JSON body (an HTML error page, truncated JSON, a wrong type)."""


class BulkFailed(NitroError):
    """A bulk request (207, errorcode 1243) failed for some items; ``results`` has one entry
    per item the ADC processed: None for success, the item's error otherwise."""

    def __init__(
        self, operation: Operation, message: str, results: list[NitroError | None], **kw: Any
    ) -> None:
        super().__init__(operation, message, **kw)
        self.results = results


def error_class(errorcode: int | None, status: int | None) -> type[NitroError]:
    if errorcode in ALREADY_EXISTS:
        return AlreadyExists
    if errorcode in NO_SUCH_RESOURCE:
        return NoSuchResource
    if errorcode in INVALID_ARGUMENT:
        return InvalidArgument
    if errorcode in BAD_CREDENTIALS or errorcode in SESSION_ERRORS or status == 401:
        return AuthFailed
    if status is not None and status >= 500 and status != 599:
        return Unavailable
    return NitroError


def error_from_body(operation: Operation, status: int, body: dict[str, Any]) -> NitroError:
    """The error a non-success NITRO body describes (per item results included for bulk)."""
    errorcode = body.get("errorcode")
    code = int(errorcode) if isinstance(errorcode, int | str) and str(errorcode).isdigit() else None
    message = str(body.get("message") or "no message").strip()
    severity = str(body.get("severity") or "ERROR")
    if code == BULK_FAILED or status == 207:
        items = body.get("response")
        results: list[NitroError | None] = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                results.append(MalformedResponse(operation, f"bulk item {item!r} is not an object"))
            elif item.get("errorcode") in (0, "0", None):
                results.append(None)
            else:
                results.append(error_from_body(operation, 200, item))
        return BulkFailed(
            operation, message, results, errorcode=code, severity=severity, status=status
        )
    cls = error_class(code, status)
    return cls(operation, message, errorcode=code, severity=severity, status=status)
