"""The caller says something short over the bot's reply: a backchannel ("uh-huh", "tá") that must not cut
it, or an interruption ("wait", a real sentence) that must.

Played on a virtual clock like tests/support/turn_taking.py (the real voice joe as the bot, an instant
fake LLM), but the caller's words are transcribed by a real STT engine, because the decision depends
on them. Shared by tests/real/test_backchannel.py and benchmarks/bench_backchannel.py.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from zapvoice.agent.gateway.codec import Encoding
from zapvoice.providers.contracts import Engines, SpeechToText, Transcript

from tests.support.call_rig import CallRig, EchoOn, HangUp, Say, UntilBotDone, Wait
from tests.support.clock import VirtualClock
from tests.support.fake_engines import FakeChat, ScriptedReply
from tests.support.speech import speak
from tests.support.turn_taking import REPLY, STALL_S, Call, first_sound_s, question, settings
from zapvoice.audio import PIPELINE_RATE, from_int16

INTO_S = 2.0  # the caller speaks this long after asking: well into the reply


@dataclass(frozen=True)
class Phrase:
    text: str
    voice: str  # "joe" (the real Piper voice), an espeak-ng voice ("en-us", "pt-br") or "recording"
    backchannel: bool  # what it is meant as: must the reply go on?
    language: str | None = None  # stt.language for the call (None: detected)
    audio: Path | None = None  # a recording's file

    @property
    def label(self) -> str:
        spoken = f"{self.voice}, stt {self.language}" if self.language else self.voice
        return f"{self.text} ({spoken})"


class TimedSTT:
    """A real STT engine whose transcriptions take `delay_s` of call time (a VirtualClock gives an engine's
    work none); the wall time each one took is kept to report."""

    def __init__(self, stt: SpeechToText, clock, delay_s: float):
        self.stt = stt
        self.clock = clock
        self.delay_s = delay_s
        self.heard: list[tuple[float, Transcript]] = []  # (seconds of audio, transcript) per request
        self.wall_s: list[float] = []

    async def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        began = time.perf_counter()
        transcript = await self.stt.transcribe(samples, language)
        self.wall_s.append(time.perf_counter() - began)
        self.heard.append((samples.size / PIPELINE_RATE, transcript))
        await self.clock.sleep(self.delay_s)
        return transcript


@dataclass
class Outcome:
    """One call's result; times in ms."""

    kept: bool  # the reply was not cut short
    answered: bool  # the caller's words got an answer of their own
    silent_ms: float  # the reply's audio stopped this long and went on (paused output)
    lost_ms: float  # reply audio never played (cut off)
    stop_ms: float  # bot audio heard after the caller's onset, until it paused or stopped
    answer_ms: float | None  # end of the caller's speech (as the VAD saw it) to the answer's first audio
    transcripts: list[str]  # what the STT heard of the caller's speech over the reply
    backchannels: int  # the call record's count
    stt_wall_s: list[float]  # how long each transcription really took


def caller_audio(tts, phrase: Phrase) -> np.ndarray:
    """The phrase as float32 16 kHz: joe through `tts` (its default voice), espeak-ng, or the recording."""
    if phrase.voice == "joe":
        import asyncio

        return from_int16(asyncio.run(tts.speak(phrase.text)).pcm)
    if phrase.voice == "recording":
        from tests.support.turn_taking import read_clip

        assert phrase.audio is not None
        return read_clip(phrase.audio)
    return speak(phrase.text, phrase.voice)


def reference_frames(tts, voice: Path) -> int:
    """Frames of the whole reply when nobody talks over it."""
    result, finished_at = _play(tts, voice, TimedSTT(_Question(), None, 0.0),
                                [UntilBotDone(), Say(question()), Wait(14.0), HangUp()])
    return len(_reply_frames(result, finished_at))


def talk_over(tts, voice: Path, stt: SpeechToText, speech: np.ndarray, full_frames: int, *,
              delay_s: float = 0.0, **flat) -> Outcome:
    """The greeting, a question, and `speech` INTO_S into the reply; `full_frames`: reference_frames()."""
    script = [UntilBotDone(), Say(question()), Wait(INTO_S), Say(speech), Wait(12.0), HangUp()]
    timed = TimedSTT(stt, None, delay_s)
    result, finished_at = _play(tts, voice, timed, script, **flat)
    rig = result.rig
    onset = rig.said[1][0] + first_sound_s(speech)
    frames = _reply_frames(result, finished_at)
    after_onset = [(start, end) for start, end in frames if end > onset]
    heard_until = onset
    for start, end in after_onset:  # the reply's audio heard without a break from the onset on
        if start - heard_until > STALL_S:
            break
        heard_until = end
    turns = rig.conversation.record.turns
    answer = turns[2] if len(turns) > 2 else None
    return Outcome(
        kept=not result.cut_short()[1], answered=answer is not None,
        silent_ms=sum(max(0.0, b[0] - a[1]) for a, b in zip(frames, frames[1:])) * 1000,
        lost_ms=max(0, full_frames - len(frames)) * rig.line.frame_samples / PIPELINE_RATE * 1000,
        stop_ms=(heard_until - onset) * 1000,
        answer_ms=None if answer is None else answer["first_audio_ms"],
        transcripts=[t.text.strip() for _, t in timed.heard[1:]],
        backchannels=rig.conversation.record.backchannels, stt_wall_s=timed.wall_s)


@dataclass
class EchoOutcome:
    """A call whose line starts to echo after the question; times in ms."""

    echo_answered: int  # turns answered that were the bot's own words coming back
    reply_whole: bool  # the reply to the question played to its end
    missing_ms: float  # reply audio the caller waited for (pauses)
    own_echo: int  # utterances dropped as the bot's own words
    transcripts: list[str]


def echo_turned_on(tts, voice: Path, stt: SpeechToText, echo: tuple[float, float], *, delay_s: float = 0.0,
                   **flat) -> EchoOutcome:
    """The greeting over a clean line (the detector finds no echo), the question, then the line echoes the bot
    `echo` (loss dB, delay s) through µ-law for the rest of the call: a speakerphone turned on mid-call."""
    timed = TimedSTT(stt, None, delay_s)
    script = [UntilBotDone(), Say(question()), EchoOn(echo), Wait(20.0), HangUp()]
    result, _ = _play(tts, voice, timed, script, codec="mulaw", **flat)
    events = result.rig.conversation.record
    turns = events.turns
    return EchoOutcome(echo_answered=len(turns) - 2, reply_whole=not result.cut_short()[1],
                       missing_ms=result.missing_s(1) * 1000, own_echo=events.own_echoes,
                       transcripts=[t.text.strip() for _, t in timed.heard[1:]])


def _reply_frames(result: Call, finished_at: float | None) -> list[tuple[float, float]]:
    """(start, end) of the frames of the reply to the question, as played."""
    asked = result.rig.said[0][1]
    return [(start, end) for start, end, _ in result.rig.line.played()
            if asked <= start and (finished_at is None or start < finished_at)]


class _Question:
    """The reference call's STT: its only turn is the question (the fake LLM ignores the words)."""

    async def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        return Transcript("what are your opening hours", "en", samples.size / PIPELINE_RATE, speech=True)


def _play(tts, voice: Path, stt: TimedSTT, script: list, codec: Encoding | None = None,
          **flat) -> tuple[Call, float | None]:
    """Run the call; returns it and the clock time the reply (the bot's second turn) was finished, cut or not."""
    clock = VirtualClock()
    stt.clock = clock
    finished: list[float] = []
    with tempfile.TemporaryDirectory() as records:
        llm = FakeChat(clock, [ScriptedReply(REPLY)] * 5, first_token_s=0.0, token_s=0.0)
        rig = CallRig(clock, settings(Path(records), voice, **flat), Engines(stt, llm, tts), codec=codec)
        rig.conversation.record.listeners.append(
            lambda line: finished.append(clock.now()) if line["event"] == "turn" else None)
        rig.play(script, max_s=60.0)
    return Call(rig, stt), finished[1] if len(finished) > 1 else None  # type: ignore[arg-type]  # any STT


BACKCHANNELS_EN = ("uh-huh", "mm-hmm", "yeah", "okay", "right", "I see", "got it", "yes")
BACKCHANNELS_PT = ("aham", "uhum", "sim", "tá", "tá bom", "certo", "entendi")
COMMANDS = ("stop", "wait", "no", "hold on", "that's wrong")


def phrases() -> list[Phrase]:
    """Backchannels by joe and espeak-ng (English), espeak-ng pt-br (language detected, then stt.language pt);
    interruptions: short commands by joe and the 10 real recordings."""
    from tests.support.real_models import english_clips

    return [*(Phrase(text, "joe", True) for text in BACKCHANNELS_EN),
            *(Phrase(text, "en-us", True) for text in BACKCHANNELS_EN),
            *(Phrase(text, "pt-br", True) for text in BACKCHANNELS_PT),
            *(Phrase(text, "pt-br", True, language="pt") for text in BACKCHANNELS_PT),
            *(Phrase(text, "joe", False) for text in COMMANDS),
            *(Phrase(clip.text, "recording", False, audio=clip.audio) for clip in english_clips())]
