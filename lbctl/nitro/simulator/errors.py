"""NITRO errors as the appliance reports them: an HTTP status plus an errorcode and a message.

Messages carry ``[argument, value]`` context the way real appliances do, so client logs built
against the simulator read like logs from a real ADC.
"""

from __future__ import annotations

from typing import Any

NETSCALER_ERROR = 599  # "Netscaler specific error": the status of most non-HTTP-ish failures


class NitroError(Exception):
    """One NITRO failure; ``body()`` is the JSON the appliance sends."""

    def __init__(self, status: int, code: int, message: str, *context: object) -> None:
        if context:
            message = f"{message} [{', '.join(str(c) for c in context)}]"
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"errorcode": self.code, "message": self.message, "severity": "ERROR"}


def done() -> dict[str, Any]:
    return {"errorcode": 0, "message": "Done", "severity": "NONE"}


def no_such_resource(*context: object) -> NitroError:
    return NitroError(404, 258, "No such resource", *context)


def already_exists(*context: object) -> NitroError:
    return NitroError(409, 273, "Resource already exists", *context)


def invalid_argument(*context: object) -> NitroError:
    return NitroError(NETSCALER_ERROR, 278, "Invalid argument", *context)


def invalid_value(*context: object) -> NitroError:
    return NitroError(NETSCALER_ERROR, 1097, "Invalid argument value", *context)


def no_such_argument(*context: object) -> NitroError:
    return NitroError(NETSCALER_ERROR, 1090, "No such argument", *context)


def required_missing(*context: object) -> NitroError:
    return NitroError(NETSCALER_ERROR, 1095, "Required argument missing", *context)


def both_specified(*context: object) -> NitroError:
    return NitroError(NETSCALER_ERROR, 1092, "Arguments cannot both be specified", *context)


def invalid_name(*context: object) -> NitroError:
    return NitroError(NETSCALER_ERROR, 1075, "Invalid name (allowed chars)", *context)


def netscaler(code: int, message: str, *context: object) -> NitroError:
    """Any other appliance-specific error, answered with HTTP 599."""
    return NitroError(NETSCALER_ERROR, code, message, *context)


def bad_request(code: int, message: str, *context: object) -> NitroError:
    """A request NITRO cannot parse or route (HTTP 400)."""
    return NitroError(400, code, message, *context)
