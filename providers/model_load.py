"""What went wrong when a model on disk does not load, in words a user can act on.

The libraries answer with their own exceptions (CTranslate2's ValueError, onnxruntime's
InvalidProtobuf, json's decode error), which say neither which file nor what to do. A setting
the hardware cannot honour (a float16 compute type on the CPU) is not a damaged file, so it is
told apart: fetching the model again would not help there.
"""

from __future__ import annotations

import json
from pathlib import Path

from zapvoice.settings import Settings

CPU_COMPUTE_TYPES = "int8, int8_float32 and float32"


def whisper_load_problem(whisper_dir: Path, settings: Settings, exc: Exception) -> str:
    compute_type = settings.stt.whisper_compute_type
    if isinstance(exc, ValueError) and "compute type" in str(exc):
        return (f"cannot load the Whisper model from {whisper_dir} with stt.whisper_compute_type={compute_type}: "
                f"{str(exc).rstrip('.')}. This is a setting, not a damaged model: zapvoice runs Whisper on the CPU; "
                f"set -c stt.whisper_compute_type=int8 (the default; {CPU_COMPUTE_TYPES} run on the CPU; environment: "
                "ZAPVOICE_WHISPER_COMPUTE_TYPE)")
    return (f"cannot load the Whisper model from {whisper_dir}: {_first_line(exc)}. The files are damaged or are not "
            f"a faster-whisper (CTranslate2) model: {_refetch(whisper_dir, whisper_dir.name, settings)}")


def voice_load_problem(voice_files: dict[str, Path], settings: Settings, exc: Exception) -> str:
    """Each voice is loaded alone again to find the one at fault (only on this failure path)."""
    from piper import PiperVoice

    for name, path in voice_files.items():
        try:
            PiperVoice.load(path)
        except Exception as own:  # onnxruntime's errors share no base below Exception
            return f"cannot load the Piper voice {path}: {_voice_fault(path, own)}: {_refetch(path, name, settings)}"
    return f"cannot load the Piper voices {', '.join(map(str, voice_files.values()))}: {_first_line(exc)}"


def _voice_fault(path: Path, exc: Exception) -> str:
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return f"its {path.name}.json is not valid JSON ({exc})"
    if isinstance(exc, KeyError):
        return f"its {path.name}.json has no {exc} entry, so it is not a Piper voice configuration"
    return f"the file is not a valid ONNX model, probably a cut-short download ({_first_line(exc)})"


def _refetch(path: Path, name: str, settings: Settings) -> str:
    """A model under models.dir came from models.txt and can be fetched again; one the user gave must be replaced."""
    root = settings.models.dir
    if path.resolve().is_relative_to(root.resolve()):
        return f"fetch it again with `zapvoice models pull {name} --force --model-dir {root}`"
    return "replace it with a complete copy (or use a name from models.txt, which zapvoice fetches)"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
