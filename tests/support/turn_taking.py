"""Hard phone conditions for turn taking, played against a Conversation on a virtual clock.

The bot speaks with a real voice (a tone's echo is gentler than speech's), the STT and LLM are
instant fakes, and the caller is real recordings over a line that may echo the bot back, crackle,
hiss or hum. Shared by tests/real/test_turn_taking.py and benchmarks/bench_turn_taking.py, so the
figures in BENCHMARKS.md come from the scenarios the tests check.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from zapvoice.agent.conversation import INTERRUPTED
from zapvoice.agent.gateway.codec import Encoding
from zapvoice.providers.contracts import Engines

from tests.support.call_rig import CallRig, HangUp, Say, UntilBotDone, Wait
from tests.support.clock import VirtualClock
from tests.support.fake_engines import FakeChat, FakeSTT, ScriptedReply
from tests.support.settings import build_settings
from zapvoice.audio import PIPELINE_RATE
from zapvoice.settings import Settings

GREETING = "Hello, thanks for calling the clinic. How can I help you today?"
REPLY = ("We are open from nine in the morning until six in the evening, Monday to Friday, and on "
         "Saturdays until noon. You can also book an appointment online at any time.")
STALL_S = 0.005  # a gap this long between two frames of one bot turn is audio the caller missed
# On an echoing line the echo's first onset costs the greeting one pause of about 300 ms while the canceller
# does not know the line yet (agent/echo.py); next to a comma's pause that can pass for the end of the turn.
# The echo scenarios' caller waits for a longer silence, so a cut bot turn they count is a false barge-in, not
# a caller who took the pause for the end; the pause is counted as a stall.
GREETING_OVER = UntilBotDone(silent_s=0.8)


def settings(record_dir: Path, voice: Path, **flat) -> Settings:
    """Piper without its random variation: the bot says its lines the same way on every run, so a scenario
    near a threshold cannot pass on one run and fail on the next."""
    return build_settings(agent_record_dir=record_dir, agent_greeting=GREETING, agent_idle_prompt_s=60.0,
                          voices=[str(voice)], tts_noise_scale=0.0, tts_noise_w_scale=0.0, **flat)


def read_clip(path: Path) -> np.ndarray:
    audio, rate = soundfile.read(path, dtype="float32")
    if rate != PIPELINE_RATE:
        raise ValueError(f"{path} is {rate} Hz, not {PIPELINE_RATE}")
    return audio


def first_sound_s(audio: np.ndarray, dbfs: float = -40.0) -> float:
    """Where the first 20 ms louder than `dbfs` starts."""
    frames = audio[: audio.size // 320 * 320].reshape(-1, 320)
    return float(np.flatnonzero(np.sqrt(np.mean(frames ** 2, axis=1)) > 10 ** (dbfs / 20))[0]) * 0.02


@dataclass
class Call:
    rig: CallRig
    stt: FakeSTT

    def bot_turns(self) -> list[list[tuple[float, float]]]:
        """Per bot turn (frames sent with no more than a second between them), (start, end) of each frame as
        the far end played it."""
        turns: list[list[tuple[float, float]]] = []
        for start, end, _ in self.rig.line.played():
            if turns and start - turns[-1][-1][1] < 1.0:
                turns[-1].append((start, end))
            else:
                turns.append([(start, end)])
        return turns

    def missing_s(self, turn: int) -> float:
        """Bot audio the caller missed in that turn: time its playout stalled between frames."""
        frames = self.bot_turns()[turn]
        return sum(max(0.0, b[0] - a[1]) for a, b in zip(frames, frames[1:]))

    def stalls(self, turn: int) -> int:
        frames = self.bot_turns()[turn]
        return sum(b[0] - a[1] > STALL_S for a, b in zip(frames, frames[1:]))

    def cut_short(self) -> list[bool]:
        """Per bot turn in the history, whether it was cut short (a barge-in, or the hangup over it)."""
        return [m["content"].endswith(INTERRUPTED) for m in self.rig.conversation.history if m["role"] == "assistant"]

    def interrupted(self) -> int:
        return sum(self.cut_short())

    def stop_after(self, onset_s: float) -> float:
        """How long the bot went on being heard after the caller's onset at `onset_s` (clock time)."""
        ends = [end for start, end, _ in self.rig.line.played() if start < onset_s + 1.0]
        later = [end for end in ends if end >= onset_s]
        return max(later, default=onset_s) - onset_s


def call(tts, voice: Path, script: list, *, echo: tuple[float, float] | None = None, codec: Encoding | None = None,
         background: np.ndarray | None = None, noise_dbfs: float = -60.0, max_s: float = 60.0, **flat) -> Call:
    """Play one call: the greeting, then `script` (call_rig steps). `tts` speaks with `voice`."""
    clock = VirtualClock()
    with tempfile.TemporaryDirectory() as records:
        stt = FakeSTT(clock, ["what are your opening hours"], delay_s=0.0, language="en")
        llm = FakeChat(clock, [ScriptedReply(REPLY)] * 20, first_token_s=0.0, token_s=0.0)
        rig = CallRig(clock, settings(Path(records), voice, **flat), Engines(stt, llm, tts), echo=echo, codec=codec,
                      background=background, noise_dbfs=noise_dbfs)
        rig.play(script, max_s=max_s)
    return Call(rig, stt)


def echo_call(tts, voice: Path, echo: tuple[float, float], codec: Encoding | None = "mulaw", **flat) -> Call:
    """The greeting, a question, the whole reply, over a line that echoes the bot: turns 0 and 1 are the bot's."""
    return call(tts, voice, [GREETING_OVER, Say(question()), UntilBotDone(), HangUp()], echo=echo, codec=codec,
                **flat)


def barge_in_call(tts, voice: Path, speech: np.ndarray, echo: tuple[float, float] | None,
                  codec: Encoding | None = "mulaw", into_s: float = 2.0, **flat) -> tuple[Call, float]:
    """The caller asks, then talks over the reply `into_s` after asking; returns the call and the clock time
    of the caller's onset over the reply."""
    ask = question()
    result = call(tts, voice, [GREETING_OVER, Say(ask), Wait(into_s), Say(speech), Wait(3.0), HangUp()],
                  echo=echo, codec=codec, **flat)
    return result, result.rig.said[1][0] + first_sound_s(speech)


def greeting_barge_in_call(tts, voice: Path, speech: np.ndarray, echo: tuple[float, float] | None,
                           into_s: float = 0.5, codec: Encoding | None = "mulaw", **flat) -> tuple[Call, float]:
    """The caller talks over the greeting `into_s` after it starts, before the echo canceller knows the line;
    returns the call and the clock time of the caller's onset."""
    result = call(tts, voice, [Wait(into_s), Say(speech), Wait(3.0), HangUp()], echo=echo, codec=codec, **flat)
    return result, result.rig.said[0][0] + first_sound_s(speech)


def question() -> np.ndarray:
    """A short real question-like recording ("ten of clubs", 1.1 s)."""
    from tests.support.real_models import english_clips

    return read_clip(next(c for c in english_clips() if c.name == "001").audio)


# --- line sounds ---------------------------------------------------------------------------------

def pops(seconds: float, dbfs: float = -20.0, every_ms: float = 25.0, pop_ms: float = 5.0, seed: int = 0,
         floor_dbfs: float = -60.0) -> np.ndarray:
    """Crackle: `pop_ms` bursts (decaying noise, `dbfs` RMS over the burst) every `every_ms`, on a quiet line."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0, 10 ** (floor_dbfs / 20), round(seconds * PIPELINE_RATE)).astype(np.float32)
    size = round(pop_ms * PIPELINE_RATE / 1000)
    shape = np.exp(-np.arange(size) / (size / 3))
    shape /= np.sqrt(np.mean(shape ** 2))
    for at in range(0, out.size - size, round(every_ms * PIPELINE_RATE / 1000)):
        out[at:at + size] += (rng.normal(0, 1, size) * shape * 10 ** (dbfs / 20)).astype(np.float32)
    return out


def cough(ms: float = 150.0, dbfs: float = -18.0, seed: int = 2) -> np.ndarray:
    """A cough-like burst: noise with a fast attack and a decay."""
    size = round(ms * PIPELINE_RATE / 1000)
    envelope = np.minimum(1.0, np.arange(size) / (0.01 * PIPELINE_RATE)) * np.exp(-np.arange(size) / (size / 2))
    burst = np.random.default_rng(seed).normal(0, 1, size) * envelope
    return (burst / np.sqrt(np.mean(burst ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)


def line_noise(kind: str, seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """Steady line noise at `dbfs` RMS: "white", "pink" (1/f) or "hum50"/"hum60" (mains and its harmonics)."""
    n = round(seconds * PIPELINE_RATE)
    rng = np.random.default_rng(seed)
    if kind == "white":
        out = rng.normal(0, 1, n)
    elif kind == "pink":
        spectrum = np.fft.rfft(rng.normal(0, 1, n))
        freqs = np.fft.rfftfreq(n, 1 / PIPELINE_RATE)
        spectrum[1:] /= np.sqrt(freqs[1:])
        spectrum[0] = 0
        out = np.fft.irfft(spectrum, n)
    elif kind in ("hum50", "hum60"):
        base = 50.0 if kind == "hum50" else 60.0
        t = np.arange(n) / PIPELINE_RATE
        out = sum(np.sin(2 * np.pi * base * h * t + h) / h for h in (1, 2, 3, 5, 7)) + rng.normal(0, 0.02, n)
    else:
        raise ValueError(f"unknown noise {kind!r}: white, pink, hum50 or hum60")
    return (out / np.sqrt(np.mean(out ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)


def speech_dbfs(audio: np.ndarray) -> float:
    """Active speech level: RMS over the 20 ms frames within 30 dB of the loudest (pauses left out)."""
    frames = audio[: audio.size // 320 * 320].reshape(-1, 320).astype(np.float64)
    levels = 10 * np.log10(np.fmax(np.mean(frames ** 2, axis=1), 1e-10))
    return float(10 * np.log10(np.mean(10 ** (levels[levels > levels.max() - 30] / 10))))


def noisy_turn(tts, voice: Path, speech: np.ndarray, kind: str, snr_db: float, **flat) -> Call:
    """The caller says `speech` over steady line noise `snr_db` below its speech level, after a second of
    that noise alone (the VAD learns its floor)."""
    background = line_noise(kind, 30.0, speech_dbfs(speech) - snr_db)
    return call(tts, voice, [UntilBotDone(), Wait(1.0), Say(speech), Wait(speech.size / PIPELINE_RATE + 2.5), HangUp()],
                background=background, **flat)


def answered_in_time(result: Call) -> bool:
    """The bot answered the caller's turn, and only after the caller had finished it."""
    replies = result.bot_turns()[1:]
    return bool(replies) and replies[0][0][0] >= result.rig.said[0][1]
