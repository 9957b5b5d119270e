"""Runs an ASGI app under a real uvicorn on a loopback port (a free one by default), in a background thread."""

from __future__ import annotations

import threading
import time
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
