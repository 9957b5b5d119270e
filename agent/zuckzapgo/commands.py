"""The ZuckZapGo commands of the CLI: `agent`, `call` and `zuckzapgo setup`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import Awaitable, Callable

import uvicorn
from zapvoice.agent.browser.server import Playground
from zapvoice.agent.command_support import load_engines, stop_on_signals
from zapvoice.agent.zuckzapgo.protocol import CallsNotEnabled, ZuckZapGoAPI, ZuckZapGoError
from zapvoice.agent.zuckzapgo.server import ZuckZapGoAgent
from zapvoice.agent.zuckzapgo.setup import enable_manual_mode, skip_calls_problem
from zapvoice.agent.zuckzapgo.webhook import create_agent_app
from zapvoice.providers.llm_check import LlmProbe

from zapvoice.composition import cache_fixed_phrases, freeze_heap
from zapvoice.http_server import server_config
from zapvoice.settings import Settings

log = logging.getLogger(__name__)


def connect_api(settings: Settings) -> ZuckZapGoAPI | None:
    if not settings.zuckzapgo.url or settings.zuckzapgo.token is None:
        print("zapvoice: give the instance with --zuckzapgo-url and --zuckzapgo-token-file "
              "(ZAPVOICE_ZUCKZAPGO_URL, ZAPVOICE_ZUCKZAPGO_TOKEN)", file=sys.stderr)
        return None
    return ZuckZapGoAPI(settings.zuckzapgo.url, settings.zuckzapgo.token.get_secret_value())


def setup(settings: Settings) -> int:
    api = connect_api(settings)
    if api is None:
        return 2

    async def main() -> list[str]:
        try:
            return await enable_manual_mode(api)
        finally:
            await api.aclose()
    try:
        report = asyncio.run(main())
    except ZuckZapGoError as exc:
        print(f"zapvoice: {exc.message}", file=sys.stderr)
        return 1
    for line in report:
        print(f"- {line}")
    return 0


def run_agent(settings: Settings) -> int:
    """Answer every call until SIGINT/SIGTERM, with the health and webhook routes on --host/--port."""
    async def serve(agent: ZuckZapGoAgent, stop: asyncio.Event) -> int:
        secret = settings.zuckzapgo.webhook_secret.get_secret_value() if settings.zuckzapgo.webhook_secret else None
        token = settings.service.token.get_secret_value() if settings.service.token else None
        llm = LlmProbe(settings.llm)
        await llm.check_and_warn()
        await _warn_if_calls_are_skipped(agent.api)
        app = create_agent_app(agent, secret, settings.service.metrics, token, llm_status=llm.current,
                               playground=Playground(settings, agent.engines, slots=agent.slots))
        server = _Server(server_config(app, settings.service, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        stopping = asyncio.create_task(stop.wait())
        log.info("agent answering calls of %s; health at http://%s:%d/health, the browser playground at /playground%s",
                 settings.zuckzapgo.url,
                 settings.service.host, settings.service.port,
                 ", webhook at /zuckzapgo/webhook?secret=..." if secret else "")
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        server.should_exit = True
        try:
            await serving
        except SystemExit:  # uvicorn exits when it cannot bind the port
            print(f"zapvoice: cannot listen on {settings.service.host}:{settings.service.port}", file=sys.stderr)
            return 1
        finally:
            await llm.aclose()
        return 0
    return _with_agent(settings, serve)


def place_call(settings: Settings, number: str) -> int:
    """Dial one number, hold the conversation, and exit when the call ends (Ctrl-C hangs up)."""
    phone = re.sub(r"[\s()+.-]", "", number)
    if not re.fullmatch(r"\d{8,15}", phone):
        print(f"zapvoice: {number!r} is not a phone number: give the country code and number, digits only "
              "(5521999999999)", file=sys.stderr)
        return 2

    async def dial(agent: ZuckZapGoAgent, stop: asyncio.Event) -> int:
        calling = asyncio.create_task(agent.call(phone))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({calling, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        calling.cancel()  # a no-op when the call is over; hangs up when Ctrl-C came first
        try:
            reason = await calling
        except asyncio.CancelledError:
            reason = "stopped by a signal"
        except ZuckZapGoError as exc:
            print(f"zapvoice: {exc.message}", file=sys.stderr)
            return 2 if isinstance(exc, CallsNotEnabled) else 1
        print(f"call ended: {reason}")
        return 0
    return _with_agent(settings, dial)


async def _warn_if_calls_are_skipped(api: ZuckZapGoAPI) -> None:
    """A skip-calls setting drops every inbound call before it rings: the agent would wait in silence."""
    try:
        problem = await skip_calls_problem(api)
    except ZuckZapGoError:  # unreachable now: the poll says so and retries
        return
    if problem:
        log.warning("%s", problem)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the command stops it, after hanging up its calls."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _with_agent(settings: Settings, work: Callable[[ZuckZapGoAgent, asyncio.Event], Awaitable[int]]) -> int:
    """Load the engines, start polling the instance, run `work` until it ends or a signal says stop."""
    api = connect_api(settings)
    if api is None:
        return 2
    engines = load_engines(settings)
    if engines is None:
        return 2

    async def main() -> int:
        stop = stop_on_signals()
        agent = ZuckZapGoAgent(settings, engines, api)
        await cache_fixed_phrases(engines, settings)
        freeze_heap()
        poller = asyncio.create_task(agent.run())
        try:
            return await work(agent, stop)
        finally:
            poller.cancel()
            await agent.aclose()
            await asyncio.gather(poller, return_exceptions=True)
            await api.aclose()
            await engines.aclose()
    return asyncio.run(main())
