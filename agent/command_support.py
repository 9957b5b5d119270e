"""What the agent's commands (`agent`, `call`, `gateway`) share: engines loaded with a message a
user can act on, and a stop event for SIGINT/SIGTERM so calls are hung up before the exit."""

from __future__ import annotations

import asyncio
import signal
import sys

from zapvoice.providers.contracts import Engines
from zapvoice.providers.model_store import ModelError

from zapvoice.composition import agent_engines
from zapvoice.settings import Settings


def load_engines(settings: Settings) -> Engines | None:
    """The agent's engines, or None after telling the user what to fix."""
    try:
        return agent_engines(settings)
    except ModelError as exc:
        print(f"zapvoice: {exc}", file=sys.stderr)
        return None


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, in the running loop."""
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    return stop
