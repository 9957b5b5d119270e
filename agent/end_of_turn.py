"""When the caller's turn is over: on silence alone (energy), or when a model hears a finished turn.

Silence alone must choose between answering late and cutting callers off mid-sentence. In
smart-turn mode the VAD's own end is held back to turns.smart_turn_max_silence_ms and, at every
pause (the VAD's PauseStarted, vad.pause_ms into the silence), the turn model is asked once
whether the utterance so far sounds complete: at or above turns.smart_turn_threshold the turn
ends right then (`EnergyVAD.end_turn`), below it the caller keeps the floor until the next
pause is judged complete or the long silence runs out. A pause the model cannot judge (busy,
failed) ends on the energy rule, vad.end_silence_ms, as if the model were absent.

The model runs off the event loop (its worker pool); a verdict that arrives after the caller
went on talking is dropped, and asking is cancelled when they do. Cost: one call per pause.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine

import numpy as np
from zapvoice.agent.vad import EnergyVAD, PauseStarted, SpeechResumed, TurnEnded, VadEvent
from zapvoice.providers.contracts import TurnModel
from zapvoice.providers.errors import ProviderError

from zapvoice.settings import TurnSettings, VadSettings

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine], asyncio.Task]


class EndOfTurn:
    """Owns the caller's VAD: feed audio to `process()`, act on its events. In smart-turn mode a
    turn may also end between chunks, through `on_end`, when the model's verdict comes back."""

    def __init__(self, turns: TurnSettings, vad: VadSettings, model: TurnModel | None,
                 spawn: Spawn, on_end: Callable[[TurnEnded], None]):
        self.smart = turns.end_of_turn == "smart-turn"
        if self.smart and model is None:
            raise ValueError("turns.end_of_turn is smart-turn but no turn model was loaded")
        self._model = model
        self._threshold = turns.smart_turn_threshold
        self._energy_end_ms = vad.end_silence_ms
        if self.smart:
            vad = vad.model_copy(update={"end_silence_ms": max(vad.end_silence_ms, turns.smart_turn_max_silence_ms)})
        self.vad = EnergyVAD(vad)
        self._spawn = spawn
        self._on_end = on_end
        self._asking: asyncio.Task | None = None
        self._unjudged: int | None = None  # utterance whose current pause the model could not judge

    def process(self, samples: np.ndarray) -> list[VadEvent]:
        """The VAD's events for this chunk (plus a turn ended on the energy rule for an unjudged pause)."""
        events = self.vad.process(samples)
        if not self.smart:
            return events
        for event in events:
            if isinstance(event, PauseStarted):
                self._stop_asking()
                self._asking = self._spawn(self._ask(event))
            elif isinstance(event, SpeechResumed | TurnEnded):
                self._stop_asking()
                self._unjudged = None
        if self._unjudged is not None and self.vad.quiet_ms >= self._energy_end_ms:
            ended = self.vad.end_turn(self._unjudged)
            self._unjudged = None
            if ended is not None:
                events.append(ended)
        return events

    async def _ask(self, pause: PauseStarted) -> None:
        assert self._model is not None  # smart mode only
        try:
            probability = await self._model.complete(pause.audio)
        except Exception as exc:  # noqa: BLE001 - busy (503) or a runtime failure: the pause ends on silence
            log.warning("the turn model could not judge a pause (%s): ending it on silence",
                        exc.message if isinstance(exc, ProviderError) else repr(exc))
            self._unjudged = pause.utterance
            return
        if probability >= self._threshold and (ended := self.vad.end_turn(pause.utterance)) is not None:
            self._on_end(ended)

    def _stop_asking(self) -> None:
        if self._asking is not None:
            self._asking.cancel()
            self._asking = None
