"""The one error type engines raise, carrying the HTTP status a client should see.

The service turns it into a JSON answer; the agent logs it and carries on with the call.
"""

from __future__ import annotations


class ProviderError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
