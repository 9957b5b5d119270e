"""ZuckZapGo's REST API for calls in manual mode (docs/contracts.md §2, docs/zuckzapgo.md §1-§3).

Every request carries the instance token in a `token:` header; every answer is wrapped as
{"code", "data", "success"} or {"code", "error", "success": false}. Failures become
ZuckZapGoError with the engine's own message (the ones callers act on, typed: unreachable,
calls engine off, no such call), and the token is scrubbed from anything that could reach a log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import quote

import httpx

NOT_ENABLED_HELP = ("the calls engine is not enabled in manual mode on this instance: run "
                    "`zapvoice zuckzapgo setup` (it sets callInboundMode=manual and reconnects the session)")


class ZuckZapGoError(Exception):
    """A refused or failed request. `status` is the HTTP status, 0 when ZuckZapGo was unreachable."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ZuckZapGoUnreachable(ZuckZapGoError):
    """No answer at all (status 0): nothing was done."""


class CallsNotEnabled(ZuckZapGoError):
    """409 from GET /call/status or POST /call/dial: the calls engine is off until enabled and reconnected (§5)."""


class CallNotFound(ZuckZapGoError):
    """404 from POST /call/answer or /call/hangup: no such call, or it has already ended."""


class EventsUnavailable(ZuckZapGoError):
    """GET /call/{callId}/events is not there (404, an older ZuckZapGo) or is not Server-Sent Events."""


END_PHASES = {"ended", "terminated", "terminate", "hangup", "rejected", "failed"}  # docs/zuckzapgo.md §4


class ZuckZapGoAPI:
    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0, client: httpx.AsyncClient | None = None):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._client = client or httpx.AsyncClient(timeout=timeout_s)

    def logger(self, name: str) -> logging.LoggerAdapter:
        """A logger that scrubs the token, for libraries that log URLs (websockets logs its handshake)."""
        return _Redacting(logging.getLogger(name), self)

    def redact(self, text: str) -> str:
        """`text` with the instance token (raw or URL-encoded) replaced, for logs and messages."""
        for secret in {self._token, quote(self._token, safe="")}:
            if secret:
                text = text.replace(secret, "***")
        return text

    async def request(self, method: str, path: str, body: dict | None = None,
                      errors: dict[int, type[ZuckZapGoError]] | None = None) -> dict:
        """The `data` of a successful answer. `errors`: what this endpoint's refusals mean, by status."""
        try:
            response = await self._client.request(method, self.base_url + path, json=body,
                                                  headers={"token": self._token})
        except httpx.HTTPError as exc:
            raise ZuckZapGoUnreachable(0, self.redact(f"cannot reach ZuckZapGo at {self.base_url}: "
                                                      f"{type(exc).__name__}: {exc}")) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ZuckZapGoError(response.status_code, f"{method} {path} answered HTTP {response.status_code} "
                                                       f"without the JSON envelope: {response.text[:200]!r}")
        if not response.is_success or answer.get("success") is False:
            message = answer.get("error") or answer.get("message") or f"HTTP {response.status_code}"
            if response.status_code == 401:
                message += (" (the instance token, ZAPVOICE_ZUCKZAPGO_TOKEN or --zuckzapgo-token-file, "
                            "is not this instance's)")
            error = (errors or {}).get(response.status_code, ZuckZapGoError)
            raise error(response.status_code, self.redact(f"{method} {path}: {message}"))
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    # --- configuration (docs/zuckzapgo.md §2-§3) --------------------------------------------------

    async def config(self) -> dict:
        return await self.request("GET", "/call/config")

    async def set_config(self, **fields) -> None:
        await self.request("PUT", "/call/config", fields)

    async def subscriptions(self) -> list[str] | None:
        """The session's current event subscriptions, or None when the instance does not say.

        wuzapi (which ZuckZapGo builds on) shows them at GET /webhook as `subscribe`, and at
        GET /session/status as comma-separated `events` in some builds."""
        for path, key in (("/webhook", "subscribe"), ("/session/status", "events")):
            try:
                value = (await self.request("GET", path)).get(key)
            except ZuckZapGoError as exc:
                if isinstance(exc, ZuckZapGoUnreachable) or exc.status == 401:
                    raise
                continue
            names = _event_names(value)
            if names is not None:
                return names
        return None

    async def disconnect(self) -> None:
        await self.request("POST", "/session/disconnect", {})

    async def connect(self, subscribe: list[str]) -> list[str] | None:
        """Connect with these subscriptions; the ones the session kept when the answer says (wuzapi's `events`)."""
        data = await self.request("POST", "/session/connect", {"Subscribe": subscribe, "Immediate": True})
        return _event_names(data.get("events"))

    # --- calls (docs/zuckzapgo.md §2, §4) --------------------------------------------------------

    async def calls(self) -> list[dict]:
        """Live calls; a call that ended is no longer listed."""
        calls = (await self.request("GET", "/call/status", errors={409: CallsNotEnabled})).get("calls")
        if not isinstance(calls, list):
            return []
        return [c for c in calls if isinstance(c, dict) and isinstance(c.get("callId"), str)]

    async def answer(self, call_id: str) -> None:
        await self.request("POST", "/call/answer", {"callId": call_id}, errors={404: CallNotFound})

    async def hang_up(self, call_id: str) -> None:
        await self.request("POST", "/call/hangup", {"callId": call_id}, errors={404: CallNotFound})

    async def dial(self, phone: str) -> str:
        try:
            data = await self.request("POST", "/call/dial", {"phone": phone}, errors={409: CallsNotEnabled})
        except CallsNotEnabled as exc:
            raise CallsNotEnabled(409, f"{exc.message}. {NOT_ENABLED_HELP}") from None
        except ZuckZapGoError as exc:
            if exc.status == 502:
                raise ZuckZapGoError(502, f"{phone} is unreachable on WhatsApp ({exc.message})") from None
            raise
        call_id = data.get("callId")
        if not isinstance(call_id, str) or not call_id:
            raise ZuckZapGoError(502, f"POST /call/dial answered no callId: {data!r}")
        return call_id

    async def call_phases(self, call_id: str) -> AsyncGenerator[str, None]:
        """The phases newer ZuckZapGo announces on `GET /call/{callId}/events` (Server-Sent Events), as they come.
        Raises EventsUnavailable when the instance has no such stream (docs/zuckzapgo.md §4)."""
        url = f"{self.base_url}/call/{quote(call_id, safe='')}/events"
        headers = {"token": self._token, "Accept": "text/event-stream"}
        try:
            # No read timeout: a quiet call sends nothing for minutes.
            async with self._client.stream("GET", url, headers=headers, timeout=httpx.Timeout(10.0, read=None)
                                           ) as response:
                media = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if response.status_code != 200 or media != "text/event-stream":
                    raise EventsUnavailable(response.status_code, f"GET /call/{{id}}/events answered HTTP "
                                            f"{response.status_code} {media or 'without a content type'}")
                async for phase in _sse_phases(response.aiter_lines()):
                    yield phase
        except httpx.HTTPError as exc:
            raise ZuckZapGoUnreachable(0, self.redact(f"the call events of {call_id} stopped: "
                                                      f"{type(exc).__name__}: {exc}")) from None

    def stream_url(self, call_id: str) -> str:
        """The media WebSocket of a call (docs/zuckzapgo.md §5); holds the token: never log it."""
        base = "ws" + self.base_url.removeprefix("http")
        return f"{base}/call/{quote(call_id, safe='')}/stream?token={quote(self._token, safe='')}"

    async def aclose(self) -> None:
        await self._client.aclose()


def _event_names(value: object) -> list[str] | None:
    """Subscriptions as wuzapi shows them: a list, or comma-separated text; None for anything else."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


async def _sse_phases(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Each event's phase: `data:` lines joined (SSE), then a JSON object's "phase" (or "state"), or the text
    itself when it is not JSON. Comments (keep-alives) and events without a phase are skipped."""
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line or not data:
            continue  # another field (event:, id:, retry:), a comment, or a blank line between events
        text, data = "\n".join(data), []
        try:
            event = json.loads(text)
        except ValueError:
            event = text.strip()
        phase = event.get("phase", event.get("state")) if isinstance(event, dict) else event
        if isinstance(phase, str) and phase:
            yield phase.lower()


class _Redacting(logging.LoggerAdapter):
    def __init__(self, logger: logging.Logger, api: ZuckZapGoAPI):
        super().__init__(logger, {})
        self.api = api

    def log(self, level: int, msg: object, *args, **kwargs) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            self.logger.log(level, "%s", self.api.redact(text), **kwargs)
