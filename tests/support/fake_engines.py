"""Instant, scriptable STT/LLM/TTS engines behind the real interfaces, for the turn-taking tests.

Their delays run on the test's clock, so a test can compress time. Each records what it was
asked, so a test can check what the conversation sent (history, interruptions, cancellations).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from zapvoice.providers.contracts import Message, Speech, ToolCall, Transcript
from zapvoice.providers.errors import ProviderError

from zapvoice.audio import PIPELINE_RATE


class FakeSTT:
    """Answers the scripted texts in order (the last one repeats); the next `failures` requests raise a
    502 instead (a count, so a test says which requests fail rather than when)."""

    def __init__(self, clock, texts: list[str], delay_s: float = 0.05, language: str = "pt"):
        self.clock = clock
        self.texts = list(texts)
        self.delay_s = delay_s
        self.language = language
        self.failures = 0
        self.calls: list[float] = []  # seconds of audio per request

    async def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        self.calls.append(samples.size / PIPELINE_RATE)
        await self.clock.sleep(self.delay_s)
        if self.failures:
            self.failures -= 1
            raise ProviderError(502, "stt down")
        text = self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]
        return Transcript(text, self.language, samples.size / PIPELINE_RATE, speech=bool(text))


@dataclass
class ScriptedReply:
    text: str
    end_call: bool = False


class FakeChat:
    """Streams each scripted reply word by word: the first after `first_token_s`, then one per `token_s`."""

    def __init__(self, clock, replies: list[ScriptedReply], first_token_s: float = 0.05, token_s: float = 0.01):
        self.clock = clock
        self.replies = list(replies)
        self.first_token_s = first_token_s
        self.token_s = token_s
        self.requests: list[list[Message]] = []
        self.closed_early = 0

    async def reply(self, system: str, messages: list[Message]) -> str:
        raise NotImplementedError("the agent streams")

    async def stream(self, system: str, messages: list[Message], tools: list[dict] = ()
                     ) -> AsyncIterator[str | ToolCall]:
        self.requests.append([dict(m) for m in messages])
        scripted = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        words = scripted.text.split(" ")
        finished = False
        try:
            await self.clock.sleep(self.first_token_s)
            for i, word in enumerate(words):
                if i:
                    await self.clock.sleep(self.token_s)
                yield word + (" " if i < len(words) - 1 else "")
            if scripted.end_call and any(tool["function"]["name"] == "end_call" for tool in tools):
                yield ToolCall("end_call", {})
            finished = True
        finally:
            if not finished:
                self.closed_early += 1


class FakeTTS:
    """A 440 Hz tone, `s_per_char` seconds per character of text, at -12 dBFS."""

    def __init__(self, clock, s_per_char: float = 0.03, delay_s: float = 0.02):
        self.clock = clock
        self.s_per_char = s_per_char
        self.delay_s = delay_s
        self.texts: list[tuple[str, str | None]] = []

    async def speak(self, text: str, voice: str | None = None, speed: float = 1.0) -> Speech:
        self.texts.append((text, voice))
        await self.clock.sleep(self.delay_s)
        t = np.arange(round(len(text) * self.s_per_char * PIPELINE_RATE)) / PIPELINE_RATE
        return Speech((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16), PIPELINE_RATE)


class ScriptedTurnModel:
    """An end-of-turn model that answers the scripted probabilities in order (the last one repeats)
    after `delay_s` of the test's clock; a probability of None raises a 503 (busy) instead, an exception is raised
    as it is (a model that failed)."""

    def __init__(self, clock, probabilities: list[float | None | Exception], delay_s: float = 0.05):
        self.clock = clock
        self.probabilities = list(probabilities)
        self.delay_s = delay_s
        self.calls: list[float] = []  # seconds of audio per question
        self.answered = 0

    async def complete(self, samples: np.ndarray) -> float:
        self.calls.append(samples.size / PIPELINE_RATE)
        await self.clock.sleep(self.delay_s)
        probability = self.probabilities.pop(0) if len(self.probabilities) > 1 else self.probabilities[0]
        if probability is None:
            raise ProviderError(503, "the turn engine is busy")
        if isinstance(probability, Exception):
            raise probability
        self.answered += 1
        return probability

    def close(self) -> None:
        """Nothing to release (Engines.aclose closes every engine it has)."""
