"""The playground and /calls on an HTTP app (the agent's port, `zapvoice serve`): the pages, their static
files, the playground's WebSocket (each connection one call) and the records' JSON API.

The pages themselves hold nothing secret and load without a token; the page asks for service.token
once and sends it as the WebSocket's first message and as the bearer token of /calls/api.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect
from zapvoice.agent.admission import CallSlots
from zapvoice.agent.browser.call import BrowserCall
from zapvoice.agent.browser.protocol import FRAME_BYTES, Access, PlaygroundSocket, Refused
from zapvoice.agent.browser.records import MAX_PER_PAGE, NoSuchCall, calls_page, one_call
from zapvoice.agent.clock import Clock
from zapvoice.agent.line import CallInfo
from zapvoice.providers.bearer import presented_token
from zapvoice.providers.contracts import Engines

from zapvoice.audio import PIPELINE_RATE
from zapvoice.settings import Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
START_TIMEOUT_S = 10.0  # for the page's start message after the WebSocket opens
PER_PAGE = 20


class Playground:
    """The browser calls of one process, on its engines; `aclose()` ends them (the server is stopping).
    `slots`: the process's agent.max_calls, when another transport shares the engines."""

    def __init__(self, settings: Settings, engines: Engines, clock: Clock | None = None,
                 slots: CallSlots | None = None):
        self.settings = settings
        self.engines = engines
        self.clock = clock
        self.slots = slots or CallSlots(settings.agent.max_calls)
        self.access = Access(settings.service.token.get_secret_value() if settings.service.token else None,
                             settings.service.allow_no_auth)
        self.calls: set[BrowserCall] = set()

    def routes(self) -> list[BaseRoute]:
        return [Route("/playground", _page("playground", "Playground")), Route("/calls", _page("calls", "Calls")),
                Mount("/playground/static", app=StaticFiles(directory=STATIC), name="playground-static"),
                WebSocketRoute("/playground/ws", self.connect),
                Route("/calls/api", self.list_calls), Route("/calls/api/{day}/{name}", self.show_call)]

    async def aclose(self) -> None:
        for call in list(self.calls):
            call.stop("zapvoice stopped")

    async def connect(self, ws: WebSocket) -> None:
        socket = PlaygroundSocket(ws)
        try:
            await socket.start(self.access, START_TIMEOUT_S)
            if self.slots.full:
                raise Refused(f"{self.slots.taken} calls in progress (agent.max_calls)")
        except Refused as exc:
            log.info("playground connection refused: %s", exc)
            await socket.refuse(str(exc))
            return
        except WebSocketDisconnect:
            return
        info = CallInfo(f"browser-{uuid.uuid4().hex[:12]}", "browser", "inbound", caller="playground")
        call = BrowserCall(socket, info, self.settings, self.engines, self.clock)
        self.calls.add(call)
        try:
            with self.slots.held():
                await socket.event("ready", call_id=info.call_id, sample_rate=PIPELINE_RATE, frame_bytes=FRAME_BYTES)
                await call.run()
        finally:
            self.calls.discard(call)

    async def list_calls(self, request: Request) -> JSONResponse:
        if (refusal := self._unauthorized(request)) is not None:
            return refusal
        directory = self.settings.agent.record_dir
        try:
            page = int(request.query_params.get("page", "1"))
            per_page = int(request.query_params.get("per_page", str(PER_PAGE)))
            if directory is None:
                return JSONResponse({"page": 1, "per_page": per_page, "pages": 1, "total": 0, "calls": [],
                                     "note": "call records are off (agent.record_dir is empty)"})
            return JSONResponse(await asyncio.to_thread(calls_page, directory, page, per_page))
        except ValueError:
            return JSONResponse({"error": f"page must be a whole number from 1, per_page 1 to {MAX_PER_PAGE}"},
                                status_code=422)

    async def show_call(self, request: Request) -> JSONResponse:
        if (refusal := self._unauthorized(request)) is not None:
            return refusal
        directory = self.settings.agent.record_dir
        try:
            if directory is None:
                raise NoSuchCall("call records are off (agent.record_dir is empty)")
            call = await asyncio.to_thread(one_call, directory, request.path_params["day"],
                                           request.path_params["name"])
        except NoSuchCall as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(call)

    def _unauthorized(self, request: Request) -> JSONResponse | None:
        if self.access.admits(presented_token(request.headers.get("authorization"))):
            return None
        message = (self.access.refusal() if self.access.token is None
                   else "missing or wrong bearer token: send 'Authorization: Bearer <token>'")
        return JSONResponse({"error": message},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _page(name: str, title: str):
    """A page: its main part (static/NAME.html) and script (static/NAME.js) in the pages' shared shell."""
    current = ' aria-current="page"'
    nav = " ".join(f'<a href="/{link}"{current if link == name else ""}>{text}</a>'
                   for link, text in (("playground", "Playground"), ("calls", "Calls")))
    html = Template((STATIC / "shell.html").read_text(encoding="utf-8")).substitute(
        title=title.lower(), nav=nav, main=(STATIC / f"{name}.html").read_text(encoding="utf-8"), script=f"{name}.js")

    async def page(_: Request) -> HTMLResponse:
        return HTMLResponse(html)
    return page
