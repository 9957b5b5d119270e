"""The record of one call: what was said and how long each reply took, as JSON lines (and Prometheus metrics).

One file per call (`<record dir>/<date>/<call id>.jsonl`), one line per event, written as it
happens, so a crash loses nothing already said. The same timings go to the log.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from zapvoice.agent.line import CallInfo
from zapvoice.providers.metrics import METRICS

log = logging.getLogger(__name__)


@dataclass
class TurnTimes:
    """Clock times of one reply's milestones; `ms()` makes them relative to the end of speech."""

    speech_end: float
    stt_done: float | None = None
    first_token: float | None = None
    first_audio: float | None = None
    speculative_stt: bool = False

    def ms(self) -> dict[str, float | None]:
        def since_end(moment: float | None) -> float | None:
            return None if moment is None else round((moment - self.speech_end) * 1000, 1)
        return {"stt_ms": since_end(self.stt_done), "first_token_ms": since_end(self.first_token),
                "first_audio_ms": since_end(self.first_audio)}


class CallRecord:
    def __init__(self, info: CallInfo, directory: Path | None):
        self.info = info
        self.turns: list[dict] = []
        self.backchannels = 0  # times the caller talked over the bot with only "uh-huh" and was not answered
        self.own_echoes = 0  # times the caller's line brought the bot's own words back
        self.listeners: list[Callable[[dict], None]] = []  # each line as it is written (the playground shows them)
        self.path = None
        if directory is not None:
            safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", info.call_id)[:80]
            self.path = directory / time.strftime("%Y-%m-%d") / f"{safe_id}.jsonl"

    def started(self) -> None:
        METRICS.call_started(self.info.transport)
        self._write({"event": "call_started", **asdict(self.info)})
        log.info("call %s (%s, %s) started", self.info.call_id, self.info.transport, self.info.direction)

    def turn(self, user: str, assistant: str, interrupted: bool, times: TurnTimes | None) -> None:
        entry = {"event": "turn", "user": user, "assistant": assistant, "interrupted": interrupted}
        if times is not None:
            entry.update(times.ms(), speculative_stt=times.speculative_stt)
            METRICS.turn(times)
        self.turns.append(entry)
        self._write(entry)
        if times is not None:
            t = times.ms()
            log.info("call %s turn %d: stt %s ms, first token %s ms, first audio %s ms after speech end%s%s",
                     self.info.call_id, len(self.turns), t["stt_ms"], t["first_token_ms"], t["first_audio_ms"],
                     " (speculative stt)" if times.speculative_stt else "", " [interrupted]" if interrupted else "")

    def barged_in(self) -> None:
        METRICS.barge_in(self.info.transport)

    def backchannel(self, text: str) -> None:
        """The caller said only `text` ("uh-huh") over the bot, which went on."""
        self.backchannels += 1
        self._write({"event": "backchannel", "text": text})

    def own_echo(self, text: str) -> None:
        """The caller's line brought the bot's own words back (an echo), heard as `text`; not answered."""
        self.own_echoes += 1
        self._write({"event": "own_echo", "text": text})

    def ended(self, reason: str, duration_s: float) -> None:
        METRICS.call_ended(self.info.transport, reason)
        self._write({"event": "call_ended", "reason": reason, "duration_s": round(duration_s, 2),
                     "turns": len(self.turns), "backchannels": self.backchannels})
        log.info("call %s ended after %.1f s: %s", self.info.call_id, duration_s, reason)

    def _write(self, entry: dict) -> None:
        line = {"at": time.time(), "call_id": self.info.call_id, **entry}
        for listener in self.listeners:
            listener(line)
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError as exc:  # a full disk must not end the call
            log.warning("cannot write the record of call %s: %s", self.info.call_id, exc)
