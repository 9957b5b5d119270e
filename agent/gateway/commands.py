"""The gateway in the CLI: `zapvoice gateway [--echo]`, and `zapvoice serve --gateway-port` beside the HTTP service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from zapvoice.agent.admission import CallSlots
from zapvoice.agent.clock import Clock, MonotonicClock
from zapvoice.agent.command_support import load_engines, stop_on_signals
from zapvoice.agent.gateway.call import AgentCall
from zapvoice.agent.gateway.echo import EchoCall
from zapvoice.agent.gateway.protocol import GatewaySocket
from zapvoice.agent.gateway.server import GatewayServer
from zapvoice.agent.line import CallInfo
from zapvoice.providers.contracts import Engines
from zapvoice.providers.llm_check import LlmProbe

from zapvoice.composition import cache_fixed_phrases, freeze_heap
from zapvoice.settings import Settings

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def serving(settings: Settings, engines: Engines | None, clock: Clock | None = None,
                  llm: LlmProbe | None = None, slots: CallSlots | None = None) -> AsyncIterator[GatewayServer]:
    """The gateway server until the block ends, its calls held by the agent on `engines` (None: the echo);
    `llm`: checked now, and shown by /health; `slots`: the process's call count when other transports share it."""
    clock = clock or MonotonicClock()
    if engines is None:
        def handle(socket: GatewaySocket, info: CallInfo):  # the same signature as the agent's; the echo needs no info
            return EchoCall(socket, settings.gateway, clock).run()
    else:
        await cache_fixed_phrases(engines, settings)
        freeze_heap()

        def handle(socket: GatewaySocket, info: CallInfo):
            return AgentCall(socket, info, settings, engines, clock).run()
    token = settings.service.token.get_secret_value() if settings.service.token else None
    if llm is not None:
        await llm.check_and_warn()
    slots = slots or CallSlots(settings.agent.max_calls)
    async with GatewayServer(settings.gateway, handle, slots, metrics=settings.service.metrics,
                             token=token, llm_status=llm.current if llm else None) as server:
        yield server


def beside_service(settings: Settings, engines: Engines) -> Callable[[CallSlots], AbstractAsyncContextManager]:
    """The gateway for `zapvoice serve`, its agent on the service's own engines and its calls counted with the
    playground's."""
    return lambda slots: serving(settings, engines, slots=slots)


def run_gateway(settings: Settings, echo: bool) -> int:
    """Answer gateway calls until SIGINT/SIGTERM, then hang up the calls in progress."""
    engines = None
    if not echo:
        engines = load_engines(settings)
        if engines is None:
            return 2

    async def main() -> int:
        stop = stop_on_signals()
        llm = LlmProbe(settings.llm) if engines is not None else None
        try:
            async with serving(settings, engines, llm=llm):
                await stop.wait()
        except OSError as exc:  # the port is taken, the certificate unreadable (ssl.SSLError is one too)
            print(f"zapvoice: cannot start the gateway: {exc}", file=sys.stderr)
            return 1
        finally:
            if llm is not None:
                await llm.aclose()
            if engines is not None:
                await engines.aclose()
        return 0
    return asyncio.run(main())
