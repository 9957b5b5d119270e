"""The bearer token every zapvoice port asks for (service.token): one parse, one constant-time compare."""

from __future__ import annotations

import hmac


def presented_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when there is none."""
    scheme, _, token = (authorization or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def token_matches(expected: str, presented: object) -> bool:
    return isinstance(presented, str) and hmac.compare_digest(presented.encode(), expected.encode())
