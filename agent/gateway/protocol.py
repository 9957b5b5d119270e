"""The 4143 protocol (docs/gateway-4143.md, docs/contracts.md §3) on one connection: JSON events and binary audio.

The gateway is the client and sends `incoming_call`, `dtmf` and `hangup`; we answer with
`answer`, `dtmf` and `hangup`. Whatever else it sends (text that is not JSON, unknown events,
invalid digits) is logged and skipped: a confused gateway must not end a call. After a hangup,
either side's, nothing more is sent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

CLIENT_DIGITS = frozenset("0123456789*#ABCD")  # what the gateway may send
SERVER_DIGITS = frozenset("0123456789*#")  # what we may send
MAX_DTMF_MS = 1000
MAX_FIELD_CHARS = 128  # caller and session fields reach the system prompt and file names


@dataclass(frozen=True)
class IncomingCall:
    caller_id: str
    did_number: str
    session_id: str


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Hangup:
    pass


Event = IncomingCall | Dtmf | Hangup


class BadMessage(ValueError):
    """A text message that is not a valid event; `kind` groups them for the log."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def parse(text: str) -> Event:
    """A text message as an event; BadMessage says why it is not one."""
    try:
        message = json.loads(text)
    except ValueError:
        raise BadMessage("text that is not JSON", repr(text[:80])) from None
    except RecursionError:  # "[" * 100000 is a short message: the size limit does not stop it
        raise BadMessage("JSON nested too deeply", repr(text[:80])) from None
    if not isinstance(message, dict):
        raise BadMessage("JSON that is not an event object", repr(text[:80]))
    name = message.get("event")
    if name == "incoming_call":
        return IncomingCall(_field(message, "callerId"), _field(message, "didNumber"), _field(message, "sessionId"))
    if name == "dtmf":
        digit = message.get("digit")
        if not isinstance(digit, str) or digit.upper() not in CLIENT_DIGITS:
            raise BadMessage("invalid dtmf digit", f"{digit!r} is not one of 0-9 * # A-D")
        return Dtmf(digit.upper())
    if name == "hangup":
        return Hangup()
    raise BadMessage("unknown event", repr(name)[:80])


def _field(message: dict, key: str) -> str:
    value = message.get(key)
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    return "".join(ch for ch in text if ch.isprintable())[:MAX_FIELD_CHARS]


class GatewaySocket:
    """One gateway connection, as the call sees it: `next()` for what comes in, a method per event to send."""

    def __init__(self, ws: ServerConnection):
        self.ws = ws
        self.label = f"gateway connection {ws.id.hex[:8]}"  # becomes the call id once known
        self.hung_up_by: str | None = None  # "caller" or "server": the call is over, nothing more goes out
        self._warned: set[str] = set()

    async def next(self) -> bytes | Event | None:
        """The next audio message or valid event; None once the connection is closed."""
        while True:
            try:
                message = await self.ws.recv()
            except ConnectionClosed:
                return None
            if isinstance(message, bytes):
                return message
            try:
                event = parse(message)
            except BadMessage as exc:
                self.warn_once(exc.kind, f"ignored {exc}")
                continue
            if isinstance(event, Hangup):
                self.hung_up_by = self.hung_up_by or "caller"
            return event

    def warn_once(self, kind: str, message: str) -> None:
        """Log a peer's misbehaviour once per kind and connection (a flood of it must not flood the log)."""
        level = logging.DEBUG if kind in self._warned else logging.WARNING
        self._warned.add(kind)
        log.log(level, "%s: %s", self.label, message)

    async def answer(self) -> None:
        await self._send_event({"event": "answer"})

    async def dtmf(self, digit: str, duration_ms: int) -> None:
        if digit not in SERVER_DIGITS:
            raise ValueError(f"cannot send DTMF {digit!r}: the gateway takes 0-9, * and #")
        await self._send_event({"event": "dtmf", "digit": digit, "duration": max(1, min(duration_ms, MAX_DTMF_MS))})

    async def audio(self, data: bytes) -> None:
        """Send audio; ConnectionClosed if the gateway has gone (the call is lost)."""
        if data and self.hung_up_by is None:
            await self.ws.send(data)

    async def hang_up(self) -> None:
        """End the call from our side: the hangup event (unless the call is already over), then the close."""
        if self.hung_up_by is None:
            self.hung_up_by = "server"
            try:
                await self.ws.send(json.dumps({"event": "hangup"}))
            except ConnectionClosed:
                pass
        await self.close()

    async def close(self) -> None:
        await self.ws.close()

    async def _send_event(self, event: dict) -> None:
        if self.hung_up_by is None:
            await self.ws.send(json.dumps(event))
