"""What the conversation needs from a transport (ZuckZapGo's media socket, the 4143 gateway).

A transport turns its wire format into 16 kHz mono audio for `Conversation.hear()`, and gives
the conversation a `CallLine` to talk back and hang up. Everything else (turn taking, barge-in,
the pipeline, timers) is the conversation's, so a new transport is one new folder shaped like
agent/gateway and agent/zuckzapgo: protocol.py (the wire), line.py (its CallLine), call.py (one
call: the caller's input to the conversation), server.py (finding and taking calls), commands.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np


@dataclass(frozen=True)
class CallInfo:
    """Who is on the call; recorded, and available to the system prompt."""

    call_id: str
    transport: str
    direction: Literal["inbound", "outbound"]
    caller: str = ""
    called: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def prompt_fields(self) -> dict[str, str]:
        return {"call_id": self.call_id, "direction": self.direction, "caller": self.caller or "unknown",
                "called": self.called or "unknown", **self.extra}


@dataclass(frozen=True)
class LineTool:
    """Something the transport can do that the LLM may ask for (send DTMF digits, ...)."""

    spec: dict  # an OpenAI function tool: {"type": "function", "function": {"name", "description", "parameters"}}
    run: Callable[[dict], Awaitable[None]]  # called with the arguments the model gave

    @property
    def name(self) -> str:
        return self.spec["function"]["name"]


class CallLine(Protocol):
    frame_samples: int  # samples at 16 kHz in each frame send() takes
    lead_frames: int  # frames the far end may have queued ahead of real time

    @property
    def tools(self) -> Sequence[LineTool]:
        """Offered to the LLM besides end_call (read-only here, so a line may keep them in a tuple)."""

    async def send(self, frame: np.ndarray) -> None:
        """One frame of int16 speech at 16 kHz, exactly frame_samples long."""

    async def hang_up(self) -> None:
        """End the call from our side (the conversation has finished talking)."""
