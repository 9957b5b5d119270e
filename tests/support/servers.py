"""Runs an ASGI app under a real uvicorn on a loopback port (a free one by default): in a background
thread, or from the test's own event loop (ServedHere)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn


@dataclass
class RunningServer:
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(app, port: int = 0, **config) -> RunningServer:
    """Serve `app` on `port` (0: a free one; a fixed one lets a test restart a server on the same address)."""
    return serve_config_in_thread(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))


def serve_config_in_thread(config: uvicorn.Config) -> RunningServer:
    """Serve a whole uvicorn Config (zapvoice.http_server.server_config: the service's own edge)."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(server, thread, port)


class ServedHere:
    """An app to serve from a test's own loop (one on a virtual clock, which must see its peers' work),
    on a port taken now, so that settings can name its URL before the loop runs."""

    def __init__(self, app, port: int = 0):
        self.app = app
        # IPPROTO_TCP named, so that asyncio sets TCP_NODELAY on each connection: Nagle would hold a small
        # write back ~40 ms for the peer's delayed ACK, and a virtual clock would jump past it meanwhile.
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen()
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self._task = asyncio.create_task(self._server.serve(sockets=[self._listener]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("uvicorn did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving and close the port (a ServedHere on the same port may take it again)."""
        self._server.should_exit = True
        await self._task
        self._listener.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[ServedHere]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()
