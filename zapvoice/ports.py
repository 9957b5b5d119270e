"""The ports a command will listen on, tried before it loads any model.

Loading Whisper and the voices takes seconds to minutes; finding the port taken only afterwards
(or as a traceback from the gateway's start inside the service's lifespan) wastes that and says
little. Each port is bound once, as uvicorn and websockets bind it (SO_REUSEADDR, so a port
in TIME_WAIT after a restart is not mistaken for a taken one), and released at once.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from zapvoice.settings import DEFAULT_GATEWAY_PORT, Settings


@dataclass(frozen=True)
class Listener:
    what: str  # the flag a user changes: "--port", "--gateway-port"
    host: str
    port: int


def listeners(settings: Settings, command: str) -> list[Listener]:
    """What `command` (serve, agent, gateway) listens on; port 0 (any free one) is never taken."""
    service = Listener("--port", settings.service.host, settings.service.port)
    gateway_port = DEFAULT_GATEWAY_PORT if settings.gateway.port is None else settings.gateway.port
    gateway = Listener("--gateway-port", settings.gateway.host, gateway_port)
    chosen = {"serve": [service, *([gateway] if settings.gateway.port is not None else [])],
              "agent": [service], "gateway": [gateway]}[command]
    return [listener for listener in chosen if listener.port != 0]


def unavailable(wanted: list[Listener]) -> str | None:
    """One line naming the first listener that cannot bind, and why; None when all can."""
    for listener in wanted:
        try:
            infos = socket.getaddrinfo(listener.host or None, listener.port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            return f"cannot listen on {listener.host}:{listener.port} ({listener.what}): {exc.strerror}"
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:  # as asyncio's servers bind: :: does not also claim 0.0.0.0
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    probe.bind(address)
                except OSError as exc:
                    hint = (f": another process is using it; stop it or pass another {listener.what}"
                            if exc.errno == errno.EADDRINUSE else "")
                    return (f"cannot listen on {listener.host}:{listener.port} ({listener.what}): "
                            f"{exc.strerror}{hint}")
    return None
