"""The uvicorn server zapvoice's HTTP endpoints run on (`zapvoice serve`, the agent's webhook), hardened
against hostile clients.

uvicorn alone answers malformed requests with a text/plain 400, lets a client take forever to send its
headers or body, buffers header lines of any size with httptools, and accepts connections until the
process runs out of file descriptors (then new ones fail silently). `server_config` builds a uvicorn
Config on h11 (its incomplete-event limit bounds header bytes while they arrive), with `GuardedH11Protocol` for what
uvicorn has no option for; every refusal is a JSON `{"error": "..."}` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import re
import resource
from dataclasses import dataclass
from http import HTTPStatus

import h11
import uvicorn
from starlette.routing import WebSocketRoute
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from zapvoice.settings import ServiceSettings

log = logging.getLogger(__name__)

FDS_RESERVED = 64  # models, logs, the LLM's connection pool, gateway calls: what connections must leave free
LINGER_S = 2.0  # after a refusal, input is read and dropped this long, so the answer is not lost to a TCP reset
LINGERING_OVER_CAP = 32  # connections refused at the cap that may linger so; more are closed at once
MAX_WEBSOCKET_MESSAGE_BYTES = 64 * 1024  # one WebSocket message (the playground sends 1920-byte frames)


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: ServiceSettings, max_connections: int) -> HttpLimits:
        return cls(settings.max_header_bytes, settings.header_timeout_s, settings.body_timeout_s, max_connections)


class ConnectionCap:
    """The open-connection limit shared by all connections of a server: one log line when it is reached,
    one when connections are accepted again, instead of a line per refusal."""

    def __init__(self, limit: int):
        self.limit = limit
        self.refused = 0
        self.lingering = 0  # refused connections still open, reading their request to drop it

    def admits(self, open_connections: int) -> bool:
        if open_connections < self.limit:
            if self.refused:
                log.info("accepting connections again, after refusing %d at the cap of %d", self.refused, self.limit)
                self.refused = 0
            return True
        if not self.refused:
            log.warning("%d connections are open, the cap (service.max_connections): new ones get 503 until some close",
                        self.limit)
        self.refused += 1
        return False


class BoundedConnection(h11.Connection):
    """h11's server side with the checks uvicorn's H11Protocol cannot express: a header block over the
    limit even when it arrived whole (h11's own limit applies to incomplete events only), Content-Length
    beside Transfer-Encoding (a request-smuggling shape h11 resolves silently), and the last protocol
    error kept, since uvicorn discards it and answers a generic 400."""

    def __init__(self, max_header_bytes: int):
        super().__init__(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self.max_header_bytes = max_header_bytes
        self.last_error: h11.RemoteProtocolError | None = None

    def next_event(self):
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                self._check(event)
            return event
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise

    def _check(self, request: h11.Request) -> None:
        headers = sum(len(name) + len(value) + 4 for name, value in request.headers.raw_items())
        size = len(request.method) + len(request.target) + headers
        if size > self.max_header_bytes:
            raise h11.RemoteProtocolError("header too large", error_status_hint=431)
        names = {name for name, _ in request.headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            raise h11.RemoteProtocolError("both Content-Length and Transfer-Encoding", error_status_hint=400)


def json_error_bytes(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection, for answers written outside h11."""
    body = json.dumps({"error": message}).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "content-type: application/json",
             f"content-length: {len(body)}", "connection: close", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap, a deadline for the headers (from the connection or the
    request's first byte) and one for the body, and JSON refusals that linger so the client reads them.

    Why a subclass: uvicorn has a keep-alive timeout only, counts its concurrency limit per request (and
    answers it in text/plain), and writes its 400s itself. The phase is read from h11's state after every
    read, so uvicorn's parsing loop is left as it is."""

    conn: BoundedConnection  # H11Protocol declares an h11.Connection; ours keeps the last protocol error

    def __init__(self, config: uvicorn.Config, server_state: ServerState, app_state: dict,
                 _loop: asyncio.AbstractEventLoop | None = None, *, limits: HttpLimits, cap: ConnectionCap):
        super().__init__(config, server_state, app_state, _loop)
        self.conn = BoundedConnection(limits.max_header_bytes)
        self.limits = limits
        self.cap = cap
        self.phase: str | None = None  # "headers" or "body" while a deadline runs
        self.deadline: asyncio.TimerHandle | None = None
        self.refused = False
        self.over_cap = False  # refused at the cap, and lingering

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not self.cap.admits(len(self.connections)):
            self.transport = transport
            self.over_cap = self.cap.lingering < LINGERING_OVER_CAP  # their file descriptors are the scarce thing
            self.cap.lingering += self.over_cap
            self._refuse(503, "too many open connections; retry shortly", (("retry-after", "1"),),
                         linger=self.over_cap)
            return
        super().connection_made(transport)
        self._follow_phase()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cap.lingering -= self.over_cap
        self.over_cap = False
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        super().data_received(data)
        if self.transport.get_protocol() is not self:
            # Upgraded to a WebSocket (the playground's): h11 still waits for the upgrade request's end of body,
            # which never comes, and the body deadline would write a 408 into the socket.
            self._stop_deadline()
        elif not self.refused:
            self._follow_phase()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.refused:
            self._follow_phase()

    def send_400_response(self, msg: str) -> None:
        error = self.conn.last_error
        status = error.error_status_hint if error is not None and 400 <= error.error_status_hint < 500 else 400
        if status == 431:
            message = f"the request headers are larger than {self.limits.max_header_bytes} bytes"
        else:
            reason = str(error).split(":")[0] if error is not None else "unreadable"
            message = f"malformed HTTP request: {reason}"
        self._refuse(status, message)

    def _follow_phase(self) -> None:
        """Start the deadline of the phase the request is in (headers, body), or stop it when neither."""
        state = self.conn.their_state
        phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if phase == self.phase:
            return
        self._stop_deadline()
        if phase == "headers" and self.timeout_keep_alive_task is not None:
            return  # between requests: uvicorn's keep-alive timeout closes it; the clock starts at the first byte
        self.phase = phase
        if phase is not None:
            seconds = self.limits.header_timeout_s if phase == "headers" else self.limits.body_timeout_s
            self.deadline = self.loop.call_later(seconds, self._deadline_passed, phase, seconds)

    def _stop_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = None
        self.phase = None

    def _deadline_passed(self, phase: str, seconds: float) -> None:
        self.deadline = None
        self.phase = None
        if self.transport.is_closing():
            return
        name = "headers" if phase == "headers" else "body"
        log.debug("closing a connection from %s: the request %s took longer than %g s", _peer(self.client),
                 name, seconds)
        self._refuse(408, f"the request {name} did not arrive within {seconds:g} s")

    def _refuse(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = (),
                linger: bool = True) -> None:
        """Answer `status` and close, unless a response has begun (then just close). With `linger`, what
        the client still sends is read and dropped for LINGER_S first: closing on unread input sends a TCP
        reset, which can destroy the answer before the client reads it. The application still waiting
        for the body is told the client went away, and cannot write after us."""
        self.refused = True
        self._stop_deadline()
        self._unset_keepalive_if_required()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        self.transport.write(json_error_bytes(status, message, headers))
        if not linger:
            self.transport.close()
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown"


class QuerySecretFilter(logging.Filter):
    """Masks the values of token-like query parameters (?token=, ?secret=) in uvicorn's access log."""

    PATTERN = re.compile(r"(?i)([?&](?:token|access_token|secret|api_key|apikey|key|password)=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(path := record.args[2], str):
            record.args = (*record.args[:2], self.PATTERN.sub(r"\1***", path), *record.args[3:])
        return True


class WebSocketRefusal:
    """Refuses WebSocket handshakes with a JSON 404 (the ASGI denial-response extension) on every path but
    the app's own WebSocket routes (the playground's): uvicorn would otherwise answer 403 with an empty body."""

    def __init__(self, app):
        self.app = app
        self.paths = {route.path for route in getattr(app, "routes", ()) if isinstance(route, WebSocketRoute)}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "websocket" or scope["path"] in self.paths:
            return await self.app(scope, receive, send)
        await receive()  # websocket.connect
        body = json.dumps({"error": f"no WebSocket endpoint at {scope['path']}"}).encode()
        if "websocket.http.response" not in scope.get("extensions", {}):
            return await send({"type": "websocket.close", "code": 1008})
        await send({"type": "websocket.http.response.start", "status": 404,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body})


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (each connection holds a file descriptor); the
    soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
            return soft
        log.info("open-file limit raised from %d to %d (the hard limit)", soft, hard)
        return hard
    return soft


def connection_limit(max_connections: int, open_file_limit: int) -> int:
    """max_connections, lowered (with a warning) to what the open-file limit leaves room for."""
    room = max(1, open_file_limit - FDS_RESERVED - LINGERING_OVER_CAP)
    if max_connections <= room:
        return max_connections
    log.warning("the open-file limit (%d) leaves room for %d connections, fewer than service.max_connections (%d): "
                "capping at %d; raise the limit (ulimit -n, systemd LimitNOFILE=) for more",
                open_file_limit, room, max_connections, room)
    return room


def access_log_config() -> dict:
    """uvicorn's logging configuration with query-string secrets masked in the access log."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"query_secrets": {"()": QuerySecretFilter}}
    config["handlers"]["access"]["filters"] = ["query_secrets"]
    return config


def server_config(app, settings: ServiceSettings, *, host: str | None = None, port: int | None = None,
                  log_level: str | None = None) -> uvicorn.Config:
    """The uvicorn Config for `app` on settings.host/port with the limits of `settings`; `host`, `port` and
    `log_level` replace the settings' (log_level for the agent, host and port in tests)."""
    limits = HttpLimits.from_settings(settings, connection_limit(settings.max_connections, raise_open_file_limit()))
    protocol = functools.partial(GuardedH11Protocol, limits=limits, cap=ConnectionCap(limits.max_connections))
    return uvicorn.Config(WebSocketRefusal(app), host=settings.host if host is None else host,
                          port=settings.port if port is None else port,
                          log_level=settings.log_level if log_level is None else log_level,
                          timeout_graceful_shutdown=5, log_config=access_log_config(),
                          # The playground's messages are 1920-byte frames and small JSON: uvicorn's 16 MiB default
                          # would let one message carry minutes of audio for the event loop to process at once.
                          ws_max_size=MAX_WEBSOCKET_MESSAGE_BYTES,
                          # uvicorn annotates a protocol class, but only calls it: a partial of one works the same.
                          http=protocol,  # type: ignore[arg-type]
                          # annotated int, but used only as a loop.call_later delay, where seconds may be fractional.
                          timeout_keep_alive=settings.keep_alive_s)  # type: ignore[arg-type]
