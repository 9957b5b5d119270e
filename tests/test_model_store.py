"""models.txt parsing and how model settings resolve to files, with messages that say what to run."""

from pathlib import Path

import pytest
from zapvoice.providers.model_store import CatalogEntry, ModelError, ModelStore, catalog_path, load_catalog


def test_the_shipped_catalog_has_the_defaults():
    from zapvoice.settings import Settings

    catalog = load_catalog()
    defaults = Settings(_env_file=None)
    assert ("whisper", defaults.stt.whisper_model) in catalog
    for voice in defaults.tts.voices:
        assert ("piper", voice) in catalog
        assert catalog["piper", voice].file.endswith(f"{voice}.onnx")
    assert catalog_path().name == "models.txt"


def test_malformed_line_is_reported(tmp_path):
    bad = tmp_path / "models.txt"
    bad.write_text("# comment\nwhisper base Systran/faster-whisper-base\npiper only-two\n")
    with pytest.raises(ModelError, match="line 3"):
        load_catalog(bad)


@pytest.fixture()
def store(tmp_path) -> ModelStore:
    catalog = {("whisper", "base"): CatalogEntry("whisper", "base", "Systran/faster-whisper-base"),
               ("piper", "pt_BR-x-medium"): CatalogEntry("piper", "pt_BR-x-medium", "r/v", "pt/x/pt_BR-x-medium.onnx")}
    return ModelStore(tmp_path / "cache", catalog)


def test_missing_named_models_say_what_to_run(store):
    with pytest.raises(ModelError, match="run `zapvoice models pull base --model-dir"):
        store.whisper_dir("base", download=False)
    with pytest.raises(ModelError, match="zapvoice models pull pt_BR-x-medium"):
        store.voice_file("pt_BR-x-medium", download=False)


def test_unknown_names_list_the_known_ones(store):
    with pytest.raises(ModelError, match=r"unknown whisper model 'huge'.*\(base\)"):
        store.whisper_dir("huge", download=False)


def test_named_models_found_in_the_cache_layout(store):
    whisper = store.root / "whisper" / "base"
    whisper.mkdir(parents=True)
    for name in ("config.json", "model.bin", "tokenizer.json"):
        (whisper / name).write_text("x")
    voice = store.root / "piper" / "pt_BR-x-medium" / "pt" / "x" / "pt_BR-x-medium.onnx"
    voice.parent.mkdir(parents=True)
    voice.write_text("x")
    Path(f"{voice}.json").write_text("{}")
    assert store.whisper_dir("base", download=False) == whisper
    assert store.voice_file("pt_BR-x-medium", download=False) == ("pt_BR-x-medium", voice)
    assert store.pull(store.entry("whisper", "base")) == whisper, "present models are not fetched again"


def test_local_paths(store, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        store.whisper_dir(str(tmp_path / "nowhere"), download=False)
    incomplete = tmp_path / "mine"
    incomplete.mkdir()
    (incomplete / "model.bin").write_text("x")
    with pytest.raises(ModelError, match="lacks config.json, tokenizer.json"):
        store.whisper_dir(str(incomplete), download=False)
    voice = tmp_path / "my-voice.onnx"
    voice.write_text("x")
    with pytest.raises(ModelError, match="no my-voice.onnx.json beside it"):
        store.voice_file(str(voice), download=False)
    Path(f"{voice}.json").write_text("{}")
    assert store.voice_file(str(voice), download=False) == ("my-voice", voice)
