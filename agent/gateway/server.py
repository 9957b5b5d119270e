"""The 4143 gateway's WebSocket server: each connection is one call.

A connection sends `incoming_call`; it is answered at once (the engines are loaded and shared,
nothing waits) and handed to the call handler: the agent's conversation, or the echo. A call
that ends from our side gets a `hangup` event before the close. Whatever one connection does
or suffers is logged and stays with it: the other calls and the server carry on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from zapvoice.agent.admission import CallSlots
from zapvoice.agent.gateway.protocol import GatewaySocket, Hangup, IncomingCall
from zapvoice.agent.line import CallInfo
from zapvoice.providers.metrics import scrape

from zapvoice.settings import DEFAULT_GATEWAY_PORT, GatewaySettings

log = logging.getLogger(__name__)

CallHandler = Callable[[GatewaySocket, CallInfo], Awaitable[str]]  # holds the call; returns why it ended
MAX_MESSAGE_BYTES = 1 << 20


class GatewayServer:
    """`async with GatewayServer(settings, handler, slots) as server:` listens until the block ends, then hangs up
    every call."""

    def __init__(self, settings: GatewaySettings, handle: CallHandler, slots: CallSlots, metrics: str = "off",
                 token: str | None = None, llm_status: Callable[[], dict] | None = None):
        """`slots`: the process's agent.max_calls, shared with its other transports. `metrics` and `token`:
        service.metrics and service.token, for GET /metrics on the gateway's port. `llm_status`: what /health
        says of the LLM (providers.llm_check)."""
        self.settings = settings
        self.llm_status = llm_status
        self.metrics = metrics
        self.token = token
        self.slots = slots
        self.handle = handle
        self.calls: set[GatewaySocket] = set()  # answered and in progress
        self._server: Server | None = None

    async def __aenter__(self) -> GatewayServer:
        s = self.settings
        port = DEFAULT_GATEWAY_PORT if s.port is None else s.port
        self._server = await serve(self._connection, s.host, port, ssl=self._tls(), compression=None,
                                   max_size=MAX_MESSAGE_BYTES, process_request=self._health)
        log.info("4143 gateway listening on %s (%s, %d Hz, %d ms chunks)", self.url, s.encoding,
                 s.sample_rate, s.chunk_ms)
        if s.host not in {"127.0.0.1", "localhost", "::1"}:
            log.warning("the 4143 protocol has no authentication: anyone who reaches %s:%d can place calls; "
                        "let only the gateway reach it", s.host, self.port)
        return self

    async def __aexit__(self, *_) -> None:
        await asyncio.gather(*(socket.hang_up() for socket in list(self.calls)), return_exceptions=True)
        self._listening.close()  # and connections that never became calls
        await self._listening.wait_closed()

    @property
    def _listening(self) -> Server:
        if self._server is None:
            raise RuntimeError("the gateway server is used outside its `async with` block")
        return self._server

    @property
    def port(self) -> int:
        return self._listening.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "wss" if self.settings.certfile else "ws"
        return f"{scheme}://{self.settings.host}:{self.port}"

    @property
    def connections(self) -> int:
        """Open WebSocket connections, calls or not."""
        return len(self._listening.connections)

    def _tls(self) -> ssl.SSLContext | None:
        if self.settings.certfile is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.settings.certfile, self.settings.keyfile)
        return context

    def _health(self, connection: ServerConnection, request: Request) -> Response | None:
        """GET /health and /metrics answer over plain HTTP (a load balancer's or container's check, a Prometheus
        scrape); other paths are calls."""
        path = request.path.partition("?")[0]
        if path == "/health":
            health: dict[str, object] = {"status": "ok", "calls": len(self.calls)}
            if self.llm_status is not None:
                health["llm"] = self.llm_status()
            status, body, content_type = 200, (json.dumps(health) + "\n").encode(), "application/json"
        elif path == "/metrics":
            status, body, content_type = scrape(self.metrics, self.token, request.headers.get("Authorization"))
        else:
            return None
        response = connection.respond(HTTPStatus(status), body.decode())  # sets Content-Length
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = content_type
        return response

    async def _connection(self, ws: ServerConnection) -> None:
        socket = GatewaySocket(ws)
        answered = False
        try:
            incoming = await self._incoming(socket)
            if incoming is None:
                return
            info = CallInfo(incoming.session_id or f"gw-{ws.id.hex[:12]}", "gateway", "inbound",
                            caller=incoming.caller_id, called=incoming.did_number,
                            extra={"session_id": incoming.session_id})
            socket.label = f"call {info.call_id}"
            if self.slots.full:
                log.warning("declining %s from %s: %d calls in progress (agent.max_calls)", socket.label,
                            info.caller or "unknown", self.slots.taken)
                await socket.hang_up()
                return
            # Taken before the answer goes out, so two calls at once cannot both take the last place.
            with self.slots.held():
                self.calls.add(socket)
                try:
                    await socket.answer()
                    answered = True
                    log.info("answered %s from %s to %s", socket.label, info.caller or "unknown",
                             info.called or "unknown")
                    reason = await self.handle(socket, info)
                finally:
                    self.calls.discard(socket)
            log.info("%s ended: %s", socket.label, reason)
        except ConnectionClosed:
            log.info("%s: the gateway went away", socket.label)
        except Exception:
            log.exception("%s failed", socket.label)
        finally:
            if answered:
                await socket.hang_up()  # nothing if the caller hung up or the bot already did
            else:
                await socket.close()

    async def _incoming(self, socket: GatewaySocket) -> IncomingCall | None:
        """Wait for the call to be announced; None if the gateway gives up or never does."""
        async def announced() -> IncomingCall | None:
            while (item := await socket.next()) is not None:
                if isinstance(item, IncomingCall):
                    return item
                if isinstance(item, Hangup):
                    return None
                what = "audio" if isinstance(item, bytes) else f"a {item.__class__.__name__.lower()} event"
                socket.warn_once(f"early {what}", f"ignored {what} before incoming_call")
            return None

        try:
            return await asyncio.wait_for(announced(), self.settings.incoming_timeout_s)
        except TimeoutError:
            socket.warn_once("timeout", f"no incoming_call in {self.settings.incoming_timeout_s:g} s; "
                                        "closing the connection")
            return None
