"""What the conversation needs from speech and language engines, independent of where they run.

Each interface has an in-process implementation (providers.stt, llm, tts) and, for the agent, a
client of the HTTP contract that ZuckZapGo also speaks; callers cannot tell them apart. Only
zapvoice.composition builds them, so importing this (or the conversation) loads no model library.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict

import numpy as np


class Message(TypedDict):
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None
    duration_s: float
    speech: bool  # False when the speech check found nothing and Whisper did not run


@dataclass(frozen=True)
class Speech:
    """Synthesized audio as 16-bit samples at `rate`."""

    pcm: np.ndarray
    rate: int
    from_cache: bool = False

    @property
    def duration_s(self) -> float:
        return self.pcm.size / self.rate


class SpeechToText(Protocol):
    async def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        """16 kHz mono float32 samples -> text ("" when there is no speech)."""


@dataclass(frozen=True)
class ToolCall:
    """The model called one of the tools it was offered; comes after the reply's text."""

    name: str
    arguments: dict


class ChatModel(Protocol):
    async def reply(self, system: str, messages: list[Message]) -> str:
        """The assistant's next turn, ready to be spoken."""

    def stream(self, system: str, messages: list[Message],
               tools: Sequence[dict] = ()) -> AsyncGenerator[str | ToolCall, None]:
        """The next turn as it is generated: raw text pieces (reasoning blocks already removed,
        not yet made speakable), then a ToolCall for each of the offered `tools` (OpenAI
        function specs) the model called. Closing the iterator early stops the generation upstream."""


class TextToSpeech(Protocol):
    async def speak(self, text: str, voice: str | None = None, speed: float = 1.0) -> Speech:
        """Text -> speech at the pipeline rate."""


class TurnModel(Protocol):
    async def complete(self, samples: np.ndarray) -> float:
        """16 kHz mono float32 audio of the caller's turn so far (ending in the pause) -> the
        probability, 0-1, that the turn is complete."""


@dataclass
class Engines:
    """The engines of one process, shared by every call and request (built by zapvoice.composition);
    `turn` only when the agent ends turns with a model (turns.end_of_turn = "smart-turn")."""

    stt: SpeechToText
    llm: ChatModel
    tts: TextToSpeech
    turn: TurnModel | None = None

    async def aclose(self) -> None:
        turn = [self.turn] if self.turn is not None else []
        for engine in (self.stt, self.llm, self.tts, *turn):  # clients close a connection pool, models a worker pool
            if hasattr(engine, "aclose"):
                await engine.aclose()
            elif hasattr(engine, "close"):
                engine.close()
            else:
                raise TypeError(f"{engine!r} has neither aclose() nor close()")
