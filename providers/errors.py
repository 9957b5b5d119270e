"""The one error type engines raise, carrying the HTTP status a client should see.

The service turns it into a JSON answer; the agent logs it and carries on with the call.
"""

from __future__ import annotations

import httpx


class ProviderError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def upstream_error_text(response: httpx.Response) -> str:
    """What an upstream said went wrong: `{"error": {"message"}}` (OpenAI), `{"error": "..."}` (zapvoice), or its body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message") or error
    return str(error)[:300]
