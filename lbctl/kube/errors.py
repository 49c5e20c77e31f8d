"""lbctl's own apiserver error hierarchy; the transport's exceptions never leak past kube/.

::

    KubeError
    ├── KubeUnavailable          connection refused/reset, timeouts (retry with backoff)
    └── KubeStatusError          the apiserver answered with a non-2xx Status
        ├── NotFound (404)
        ├── Conflict (409)       resourceVersion conflict
        │   └── AlreadyExists    409 with reason AlreadyExists
        ├── Gone (410)           resourceVersion too old: relist
        ├── Invalid (422)
        └── Forbidden (403)
"""

from __future__ import annotations

import json
from typing import Any


class KubeError(Exception):
    """Any failure talking to the apiserver."""


class KubeUnavailable(KubeError):
    """The apiserver could not be reached or did not answer in time."""


class KubeStatusError(KubeError):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeStatusError):
    pass


class Conflict(KubeStatusError):
    pass


class AlreadyExists(Conflict):
    pass


class Gone(KubeStatusError):
    pass


class Invalid(KubeStatusError):
    pass


class Forbidden(KubeStatusError):
    pass


_BY_STATUS: dict[int, type[KubeStatusError]] = {
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
}


def status_error(status: int, body: Any) -> KubeStatusError:
    """Map an HTTP status and a (possibly non-JSON) body to the matching error class."""
    document: Any = body
    if isinstance(body, bytes | str):
        try:
            document = json.loads(body)
        except ValueError:
            document = {"message": str(body[:256])}
    if not isinstance(document, dict):
        document = {}
    reason = str(document.get("reason") or "")
    message = str(document.get("message") or "")[:512]
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExists(status, reason, message)
    return _BY_STATUS.get(status, KubeStatusError)(status, reason, message)
