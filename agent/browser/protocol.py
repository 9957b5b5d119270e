"""The playground's WebSocket (docs/playground.md): JSON control messages and binary audio, both ways.

The page opens /playground/ws and sends `{"type": "start", "token": "..."}` first: the token
travels inside the connection, never in the URL, so it stays out of access logs. Then binary
messages carry the caller's microphone as s16le, 16 kHz, mono (1920-byte frames; any even length
is taken), and `{"type": "hangup"}` ends the call. The server answers `ready`, sends the bot's
speech as binary s16le 16 kHz frames, a `turn` event per turn of the call record (the transcript
of both sides and the turn's timings), and `ended` before it closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from zapvoice.providers.bearer import token_matches

log = logging.getLogger(__name__)

FRAME_BYTES = 1920  # 60 ms at 16 kHz s16le, as ZuckZapGo's media socket carries it
POLICY_VIOLATION = 1008  # close code of a refused start (wrong token, no start message)
SERVICE_RESTART = 1012  # uvicorn closes every WebSocket with it on shutdown (a browser page cannot send it)
MAX_CONTROL_CHARS = 4096


class Refused(Exception):
    """The connection did not start a call; the message says why (sent to the page, never the token)."""


@dataclass(frozen=True)
class Access:
    """Who may use the playground and /calls: whoever presents service.token. With no token set, everyone only
    where the owner said so (service.allow_no_auth): /calls shows callers' numbers and words, and the agent's
    port may be public."""

    token: str | None
    open_without_token: bool

    def admits(self, presented: object) -> bool:
        if self.token is None:
            return self.open_without_token
        return token_matches(self.token, presented)

    def refusal(self) -> str:
        if self.token is None:
            return "no service.token is set: set one (or service.allow_no_auth) to use the playground and /calls"
        return "missing or wrong token (service.token)"


def control(text: str) -> dict:
    """A text message as a control message (a JSON object with a string `type`); Refused says why not."""
    if len(text) > MAX_CONTROL_CHARS:
        raise Refused(f"a control message of {len(text)} characters: the limit is {MAX_CONTROL_CHARS}")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise Refused("a text message that is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise Refused('a control message must be a JSON object with a "type"')
    return message


class PlaygroundSocket:
    """One page's connection. Sends are serialized: the bot's audio and the record's events come from
    different tasks."""

    def __init__(self, ws: WebSocket):
        self.ws = ws
        self.closed = False
        self.server_stopping = False  # the page's socket was closed by the server shutting down, not by the page
        self.label = "playground"  # "call <id>" once the call has one
        self._sending = asyncio.Lock()
        self._warned: set[str] = set()

    async def start(self, access: Access, timeout_s: float) -> None:
        """Accept the connection and wait for a `start` with the right token; Refused otherwise."""
        await self.ws.accept()
        try:
            first = await asyncio.wait_for(self.ws.receive(), timeout_s)
        except TimeoutError:
            raise Refused(f"no start message within {timeout_s:g} s") from None
        if first["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(first.get("code", 1000))
        text = first.get("text")
        if text is None:
            raise Refused('the first message must be {"type": "start", "token": "..."}, not audio')
        message = control(text)
        if message["type"] != "start":
            raise Refused(f'the first message must be a start, not {message["type"][:40]!r}')
        if not access.admits(message.get("token")):
            raise Refused(access.refusal())

    async def next(self) -> bytes | dict | None:
        """The next audio message or control message; None once the page has gone."""
        while True:
            try:
                message = await self.ws.receive()
            except RuntimeError:  # receive after the close
                return None
            if message["type"] == "websocket.disconnect":
                self.closed = True
                self.server_stopping = message.get("code") == SERVICE_RESTART
                return None
            if message.get("bytes") is not None:
                return message["bytes"]
            try:
                return control(message.get("text") or "")
            except Refused as exc:
                log.info("playground: ignored %s", exc)

    def warn_once(self, kind: str, message: str) -> None:
        """Log a page's misbehaviour once per kind and connection (a flood of it must not flood the log)."""
        level = logging.DEBUG if kind in self._warned else logging.WARNING
        self._warned.add(kind)
        log.log(level, "%s: %s", self.label, message)

    async def event(self, kind: str, **fields: object) -> None:
        await self._send(text=json.dumps({"type": kind, **fields}, ensure_ascii=False))

    async def audio(self, data: bytes) -> None:
        await self._send(data=data)

    async def refuse(self, reason: str) -> None:
        await self.event("error", error=reason)
        await self.close(POLICY_VIOLATION, reason[:120])

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed and self.ws.application_state != WebSocketState.DISCONNECTED:
            self.closed = True
            try:
                await self.ws.close(code, reason)
            except RuntimeError:  # the page closed first
                pass

    async def _send(self, text: str | None = None, data: bytes | None = None) -> None:
        """Send unless the page has gone (a page that leaves mid-reply is the caller hanging up)."""
        async with self._sending:
            if self.closed:
                return
            try:
                if text is not None:
                    await self.ws.send_text(text)
                else:
                    await self.ws.send_bytes(data or b"")
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True
