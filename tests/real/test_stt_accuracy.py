"""Real Whisper base through the real service understands real speech: word error rate on read
sentences and short phrases, at 16 kHz and after an 8 kHz G.711 phone line, scored by the same
`zapvoice eval` code an operator runs.

Measured here: 4 errors in 92 words (4.3 %) at 16 kHz and through µ-law or A-law; the bound leave room for a different CPU's
rounding, not for a broken resampler, codec or language setting (those go past 30 %; trimming by Silero on phone audio gave 7.6 %).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from zapvoice.providers.contract_clients import ContractSTT

from tests.conftest import TOKEN
from zapvoice.evaluation import evaluate, format_report, read_clip

MAX_WER = 0.08  # both at 16 kHz and through the phone line
MAX_SENTENCE_WER = 0.15  # no single LibriVox sentence may be badly heard


def through_service(service, clips, language, phone_line=None):
    async def run():
        stt = ContractSTT(f"{service.url}/stt", TOKEN, timeout_s=60)
        try:
            return await evaluate(stt, "service", clips, language, phone_line)
        finally:
            await stt.aclose()
    return asyncio.run(run())


@pytest.mark.parametrize("phone_line", [None, "mulaw", "alaw"])
def test_the_service_hears_real_speech_at_16k_and_through_a_phone_line(real_service, real, phone_line):
    report = through_service(real_service, real["clips"], "en", phone_line)
    print(format_report(report))
    assert report.errors.words == 92
    assert report.errors.rate <= MAX_WER, format_report(report)
    for result in report.results:
        if result.clip.name.startswith("sense_and_sensibility"):
            assert result.errors.rate <= MAX_SENTENCE_WER, format_report(report)


def test_detected_language_is_english_and_forcing_portuguese_is_obeyed(real_service, real):
    clips = real["clips"][:2]
    detected = through_service(real_service, clips, None)
    assert {result.clip.name: result.errors.rate <= MAX_SENTENCE_WER for result in detected.results} == {
        clip.name: True for clip in clips}

    async def languages(forced):
        stt = ContractSTT(f"{real_service.url}/stt", TOKEN, timeout_s=60)
        try:
            return [(await stt.transcribe(read_clip(clip), forced)).language for clip in clips]
        finally:
            await stt.aclose()
    assert asyncio.run(languages(None)) == ["en", "en"]
    assert asyncio.run(languages("pt-BR")) == ["pt", "pt"]


def test_zapvoice_eval_compares_models_on_a_folder_of_recordings(real, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for clip in real["clips"][5:8]:  # three card phrases
        (folder / f"{clip.name}.wav").write_bytes(clip.audio.read_bytes())
        (folder / f"{clip.name}.txt").write_text(clip.text)
    models = f"{real['whisper_base']},{real['whisper_tiny_en']}"
    done = subprocess.run([sys.executable, "-m", "zapvoice.cli", "eval", str(folder), "--models", models,
                           "--stt-language", "en", "--model-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    comparison = done.stdout.strip().splitlines()[-2:]
    assert [row.split("|")[1].strip() for row in comparison] == models.split(",")
    for row in comparison:
        wer, errors_words = row.split("|")[2:4]
        assert float(wer) <= 40.0 and errors_words.strip().endswith("/ 10")
    assert "100%" in done.stderr  # the progress bar reached the end
    assert done.stdout.count("| 001 |") == 2
