"""The gateway in the CLI: `zapvoice gateway [--echo]`, and `zapvoice serve --gateway-port` beside the HTTP service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from zapvoice.agent.backends import Backends
from zapvoice.agent.clock import Clock, MonotonicClock
from zapvoice.agent.command_support import load_backends, stop_on_signals
from zapvoice.agent.gateway.call import AgentCall
from zapvoice.agent.gateway.echo import EchoCall
from zapvoice.agent.gateway.protocol import GatewaySocket
from zapvoice.agent.gateway.server import GatewayServer
from zapvoice.agent.line import CallInfo
from zapvoice.providers.engines import Engines
from zapvoice.settings import Settings

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def serving(settings: Settings, backends: Backends | None,
                  clock: Clock | None = None) -> AsyncIterator[GatewayServer]:
    """The gateway server until the block ends, its calls held by the agent on `backends` (None: the echo)."""
    clock = clock or MonotonicClock()
    if backends is None:
        def handle(socket: GatewaySocket, _: CallInfo):
            return EchoCall(socket, settings.gateway, clock).run()
    else:
        await backends.prepare_for_calls(settings.agent)

        def handle(socket: GatewaySocket, info: CallInfo):
            return AgentCall(socket, info, settings, backends, clock).run()
    async with GatewayServer(settings.gateway, handle, settings.agent.max_calls) as server:
        yield server


def beside_service(settings: Settings, engines: Engines) -> Callable[[], AbstractAsyncContextManager]:
    """The gateway for `zapvoice serve`, its agent on the service's own engines."""
    backends = Backends(engines.stt, engines.llm, engines.tts)
    return lambda: serving(settings, backends)


def run_gateway(settings: Settings, echo: bool) -> int:
    """Answer gateway calls until SIGINT/SIGTERM, then hang up the calls in progress."""
    backends = None
    if not echo:
        backends = load_backends(settings)
        if backends is None:
            return 2

    async def main() -> int:
        stop = stop_on_signals()
        try:
            async with serving(settings, backends):
                await stop.wait()
        except OSError as exc:  # the port is taken, the certificate unreadable (ssl.SSLError is one too)
            print(f"zapvoice: cannot start the gateway: {exc}", file=sys.stderr)
            return 1
        finally:
            if backends is not None:
                await backends.aclose()
        return 0
    return asyncio.run(main())
