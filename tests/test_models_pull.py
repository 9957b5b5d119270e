"""`zapvoice models pull` and `models list` as a user runs them, against a fake Hugging Face Hub.

The CLI reads the shipped models.txt, so the fake hub serves small stand-in files under the exact
repositories and paths models.txt names. Only pytest's tmp_path is used (no conftest fixtures).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from zapvoice.providers.model_store import ModelStore, load_catalog

from tests.support.fake_hub import build_fake_hub
from tests.support.servers import serve_in_thread

ZAPVOICE = str(Path(sys.executable).parent / "zapvoice")
CATALOG = load_catalog()
BASE = CATALOG["whisper", "base"]
FABER = CATALOG["piper", "pt_BR-faber-medium"]
SMALL = CATALOG["whisper", "small"]

WHISPER_REPO = {
    "config.json": b'{"alignment_heads": [], "lang_ids": []}',
    "model.bin": b"\x01ctranslate2 weights" * 500,
    "tokenizer.json": b'{"model": {"vocab": {}}}',
    "vocabulary.txt": b"<|endoftext|>\nhello\n",
    "pytorch_model.bin": b"\x00not for zapvoice" * 2000,  # allow_patterns must skip it
    "README.md": b"# faster-whisper-base\n",
}
VOICE_REPO = {
    FABER.file: b"\x08onnx voice" * 300,
    FABER.file + ".json": b'{"audio": {"sample_rate": 22050}, "espeak": {"voice": "pt-br"}}',
    "pt/pt_BR/cadu/medium/MODEL_CARD": b"another voice's card",
}
# models.txt's `small` repo, broken on purpose: it lacks model.bin.
INCOMPLETE_WHISPER_REPO = {name: data for name, data in WHISPER_REPO.items() if name != "model.bin"}


@pytest.fixture(scope="module")
def hub():
    app = build_fake_hub({BASE.repo: WHISPER_REPO, FABER.repo: VOICE_REPO, SMALL.repo: INCOMPLETE_WHISPER_REPO})
    running = serve_in_thread(app)
    running.requests = app.state.requests
    yield running
    running.stop()


@pytest.fixture
def fresh_hub(hub):
    hub.requests.clear()
    return hub


def run(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """The CLI with a clean environment: online (conftest sets HF_HUB_OFFLINE=1), nothing from ~/.cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ZAPVOICE_"))}
    env.update(HF_HOME=str(home / "hf-home"), HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1")
    # cwd=home: Settings would read a .env from the working directory.
    return subprocess.run([ZAPVOICE, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=home)


def pull(hub, model_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return run("models", "pull", *args, "--hub-url", hub.url, "--model-dir", str(model_dir), home=model_dir.parent)


def downloads(hub) -> list[str]:
    """Paths of file contents fetched (GET .../resolve/...), as '<repo>/<file>'."""
    fetched = []
    for method, path in hub.requests:
        if method == "GET" and "/resolve/" in path:
            repo, rest = path.lstrip("/").split("/resolve/", 1)
            fetched.append(f"{repo}/{rest.split('/', 1)[1]}")
    return sorted(fetched)


EXPECTED_DOWNLOADS = sorted(
    [f"{BASE.repo}/{name}" for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")]
    + [f"{FABER.repo}/{FABER.file}", f"{FABER.repo}/{FABER.file}.json"])


def assert_files_in_place(model_dir: Path) -> None:
    store = ModelStore(model_dir)
    whisper = store.local_path(BASE)
    for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"):
        assert (whisper / name).read_bytes() == WHISPER_REPO[name]
    assert not (whisper / "pytorch_model.bin").exists() and not (whisper / "README.md").exists()
    voice = store.local_path(FABER)
    assert voice.read_bytes() == VOICE_REPO[FABER.file]
    assert Path(f"{voice}.json").read_bytes() == VOICE_REPO[FABER.file + ".json"]


def test_pull_puts_the_served_files_where_the_store_looks(fresh_hub, tmp_path):
    model_dir = tmp_path / "models"
    result = pull(fresh_hub, model_dir, "base", "pt_BR-faber-medium")

    assert result.returncode == 0, result.stderr
    assert_files_in_place(model_dir)
    store = ModelStore(model_dir)
    assert f"{store.local_path(BASE)}" in result.stdout and f"{store.local_path(FABER)}" in result.stdout
    assert downloads(fresh_hub) == EXPECTED_DOWNLOADS  # not pytorch_model.bin, README.md or the other voice
    # huggingface_hub's bookkeeping stays inside the model directory (a container's $HOME may be read-only)
    # and holds pointers only, never a second copy of the files.
    assert not [path for path in (tmp_path / "hf-home").rglob("*") if path.is_file()]
    bookkeeping = [path for path in (model_dir / ".hf-cache").rglob("*") if path.is_file()]
    assert bookkeeping and all(path.parent.name == "refs" for path in bookkeeping)


def test_pull_again_fetches_nothing_unless_forced(fresh_hub, tmp_path):
    model_dir = tmp_path / "models"
    assert pull(fresh_hub, model_dir, "base", "pt_BR-faber-medium").returncode == 0
    fresh_hub.requests.clear()

    again = pull(fresh_hub, model_dir, "base", "pt_BR-faber-medium")
    assert again.returncode == 0, again.stderr
    assert downloads(fresh_hub) == []

    (ModelStore(model_dir).local_path(BASE) / "model.bin").write_bytes(b"corrupted")
    forced = pull(fresh_hub, model_dir, "base", "pt_BR-faber-medium", "--force")
    assert forced.returncode == 0, forced.stderr
    assert downloads(fresh_hub) == EXPECTED_DOWNLOADS
    assert_files_in_place(model_dir)


@pytest.mark.parametrize("name, message", [
    ("tiny", "could not fetch whisper tiny from {hub}/Systran/faster-whisper-tiny"),  # repository not on the hub
    ("en_US-lessac-medium", "could not fetch piper en_US-lessac-medium from {hub}/rhasspy/piper-voices"),  # no file
])
def test_what_the_hub_lacks_is_a_clear_error(fresh_hub, tmp_path, name, message):
    model_dir = tmp_path / "models"
    result = pull(fresh_hub, model_dir, name)

    assert result.returncode == 1
    assert f"zapvoice: {message.format(hub=fresh_hub.url)}" in result.stderr and "404" in result.stderr
    assert "Traceback" not in result.stderr
    entry = CATALOG["whisper" if name == "tiny" else "piper", name]
    assert not ModelStore(model_dir).local_path(entry).is_file()


def test_a_repository_without_the_model_files_is_an_error(fresh_hub, tmp_path):
    result = pull(fresh_hub, tmp_path / "models", "small")
    assert result.returncode == 1 and "model.bin" in result.stderr


def test_list_shows_what_is_present(fresh_hub, tmp_path):
    model_dir = tmp_path / "models"
    assert pull(fresh_hub, model_dir, "base", "pt_BR-faber-medium").returncode == 0

    result = run("models", "list", "--model-dir", str(model_dir), home=tmp_path)
    assert result.returncode == 0, result.stderr
    states = {line.split()[1]: line.split()[2] for line in result.stdout.splitlines()}
    assert states == {name: "present" if name in ("base", "pt_BR-faber-medium") else "missing"
                      for _, name in CATALOG}


def test_unknown_name_lists_the_known_ones(fresh_hub, tmp_path):
    result = pull(fresh_hub, tmp_path / "models", "base", "pt_BR-nobody-medium")

    assert result.returncode == 2
    assert "unknown model 'pt_BR-nobody-medium'" in result.stderr
    assert all(name in result.stderr for _, name in CATALOG)
    assert fresh_hub.requests == []  # names are checked before anything is fetched
