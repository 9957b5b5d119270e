"""The errors engines raise, carrying the HTTP status a client should see.

The service turns them into a JSON answer; the agent logs them and carries on with the call, and
tells the ones it acts on by type (UnknownVoice), never by status. What an upstream said goes
into these messages, so credentials are masked first: some upstreams repeat the Authorization
header they were sent in their errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only annotations: the conversation imports this, and need not load httpx
    import httpx

_CREDENTIALS = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)  # token68 (RFC 7235)
_URL_PASSWORD = re.compile(r"(?<=://)[^/@\s]+@")
MASK = "***"


class ProviderError(Exception):
    kind: str | None = None  # in the service's JSON error, for the errors a client acts on (contract clients read it)

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class UnknownVoice(ProviderError):
    """No loaded voice has the name or speaks the language asked for; the default voice still works."""

    kind = "unknown_voice"

    def __init__(self, message: str):
        super().__init__(422, message)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the secrets given, bearer and basic credentials and the user:password of URLs masked.
    Mask before cutting text short: a cut secret is no longer recognised."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _CREDENTIALS.sub(lambda found: f"{found[1]} {MASK}", text)
    return _URL_PASSWORD.sub(f"{MASK}@", text)


def upstream_error_kind(response: httpx.Response) -> str | None:
    """The `kind` of a zapvoice error answer (`{"error", "kind"}`), None for any other answer."""
    try:
        error = response.json()
    except (ValueError, RecursionError):
        return None
    kind = error.get("kind") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


def upstream_error_text(response: httpx.Response, body: bytes | None = None) -> str:
    """What an upstream said went wrong: `{"error": {"message"}}` (OpenAI), `{"error": "..."}` (zapvoice), or its
    body (`body`: when it was read in pieces), without the credentials it was sent."""
    raw = response.content if body is None else body
    sent = [value.partition(" ")[2] or value for value in response.request.headers.get_list("authorization")]
    try:
        error = json.loads(raw)
    except (ValueError, RecursionError):
        return redact(raw.decode("utf-8", "replace"), sent)[:300] or response.reason_phrase
    if isinstance(error, dict):
        error = error.get("error", error)
    if isinstance(error, dict):
        error = error.get("message") or error
    return redact(str(error), sent)[:300]


OPENAI_PREFIX = "/v1/"  # the OpenAI-compatible routes (providers.openai_api) answer errors in OpenAI's shape


def error_body(path: str, status: int, message: str, kind: str | None = None) -> dict:
    """A JSON error for `path`: `{"error": message, "kind"?}` on the contract routes, OpenAI's
    `{"error": {"message", "type", "param", "code"}}` on /v1/*, which OpenAI clients read."""
    if not path.startswith(OPENAI_PREFIX):
        return {"error": message} if kind is None else {"error": message, "kind": kind}
    kinds = {401: "authentication_error", 404: "invalid_request_error", 503: "server_error"}
    error_type = kinds.get(status, "server_error" if status >= 500 else "invalid_request_error")
    code = kind or {401: "invalid_api_key", 413: "request_too_large", 503: "engine_busy"}.get(status)
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def openai_status(path: str, status: int) -> int:
    """OpenAI answers an invalid request with 400 where the contract routes say 422."""
    return 400 if status == 422 and path.startswith(OPENAI_PREFIX) else status
