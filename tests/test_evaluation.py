"""`zapvoice eval` on the scripted Whisper: reading an evaluation set, scoring it, and clear errors."""

import subprocess
import sys

import pytest

from tests.conftest import SCRIPTED_TEXT
from tests.support.speech import speak
from zapvoice.audio import PIPELINE_RATE, wav_bytes
from zapvoice.evaluation import EvalSetError, load_eval_set


@pytest.fixture()
def recordings(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name, text in [("a", SCRIPTED_TEXT), ("b", "olá, tudo mal?")]:
        (folder / f"{name}.wav").write_bytes(wav_bytes(speak(text), PIPELINE_RATE))
        (folder / f"{name}.txt").write_text(text + "\n")
    return folder


def test_a_folder_and_a_tsv_give_the_same_clips(recordings, tmp_path):
    listing = tmp_path / "set.tsv"
    listing.write_text("# audio\ttext\nrecordings/a.wav\tolá, tudo bem?\n\nrecordings/b.wav\tolá, tudo mal?\n")
    from_folder, from_tsv = load_eval_set(recordings), load_eval_set(listing)
    assert [(c.name, c.audio, c.text) for c in from_folder] == [(c.name, c.audio, c.text) for c in from_tsv]


@pytest.mark.parametrize("write, says", [
    (lambda d: (d / "x.wav").write_bytes(b"RIFF"), "x.wav has no transcript"),
    (lambda d: (d / "set.tsv").write_text("x.wav hello\n"), "line 1: write the audio path, a tab"),
    (lambda d: (d / "set.tsv").write_text("missing.wav\thello\n"), "missing.wav does not exist"),
])
def test_a_broken_set_says_what_to_fix(tmp_path, write, says):
    write(tmp_path)
    source = tmp_path / "set.tsv" if (tmp_path / "set.tsv").exists() else tmp_path
    with pytest.raises(EvalSetError, match=says):
        load_eval_set(source)


def test_eval_scores_every_clip_and_sums_the_errors(recordings, model_files):
    done = subprocess.run([sys.executable, "-m", "zapvoice.cli", "eval", str(recordings),
                           "--whisper-model", str(model_files["whisper"]), "--no-auto-download"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| a | " in done.stdout and "| 0.0 | olá, tudo bem? |" in done.stdout
    assert "| 33.3 | olá, tudo bem? |" in done.stdout  # "mal" heard as "bem"
    assert done.stdout.strip().splitlines()[-1].split("|")[2:4] == [" 16.7 ", " 1 / 6 "]


def test_eval_of_a_missing_folder_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "zapvoice.cli", "eval", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "does not exist: give a folder" in done.stderr
