"""Login sessions with the appliance's limits: inactivity timeout and 20 concurrent sessions.

Time comes from an injected clock so expiry is tested without waiting.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from lbctl.nitro.simulator import errors

MAX_SESSIONS = 20


@dataclass
class Session:
    token: str
    username: str
    timeout: float
    last_used: float


class Sessions:
    def __init__(self, clock: Callable[[], float], default_timeout: float) -> None:
        self._clock = clock
        self.default_timeout = default_timeout
        self._live: dict[str, Session] = {}

    def _prune(self) -> None:
        now = self._clock()
        for token, s in list(self._live.items()):
            if now - s.last_used > s.timeout:
                del self._live[token]

    def login(self, username: str, timeout: float | None) -> Session:
        self._prune()
        if len(self._live) >= MAX_SESSIONS:
            raise errors.netscaler(445, "Session limit exceeded")
        token = "##" + secrets.token_hex(24).upper()
        session = Session(token, username, timeout or self.default_timeout, self._clock())
        self._live[token] = session
        return session

    def use(self, token: str) -> Session:
        """The session for a token, touched; unknown, expired and killed tokens all give 444."""
        self._prune()
        session = self._live.get(token)
        if session is None:
            raise errors.NitroError(401, 444, "Session expired or killed. Please login again")
        session.last_used = self._clock()
        return session

    def logout(self, token: str) -> None:
        self._live.pop(token, None)

    def expire_all(self) -> int:
        count = len(self._live)
        self._live.clear()
        return count

    def __len__(self) -> int:
        self._prune()
        return len(self._live)
