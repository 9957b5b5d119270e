"""Settings sections: both environment names, the config file, -c, precedence and the cross-field checks."""

import pytest
from pydantic import ValidationError

from zapvoice import cli
from zapvoice.settings import ConfigError, Settings, flat_names, load, nest


@pytest.fixture(autouse=True)
def no_dotenv(tmp_path, monkeypatch):
    """A developer's .env in the working directory must not leak into these tests."""
    monkeypatch.chdir(tmp_path)


def test_flat_and_nested_environment_names(monkeypatch):
    monkeypatch.setenv("ZAPVOICE_STT_MAX_AUDIO_S", "5")
    monkeypatch.setenv("ZAPVOICE_BARGE_IN", "false")
    monkeypatch.setenv("ZAPVOICE_MODEL_DIR", "/models")
    monkeypatch.setenv("ZAPVOICE_VAD__STOP_DB", "3")
    monkeypatch.setenv("ZAPVOICE_LLM_MODEL", "flat")
    monkeypatch.setenv("ZAPVOICE_LLM__MODEL", "nested")
    settings = load().settings
    assert settings.stt.max_audio_s == 5.0 and settings.turns.barge_in is False
    assert str(settings.models.dir) == "/models" and settings.vad.stop_db == 3.0
    assert settings.llm.model == "nested"  # the nested name wins over the flat one
    assert Settings().stt.max_audio_s == 5.0  # the class alone reads both names too


def test_a_dotenv_file_takes_both_names_and_the_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("ZAPVOICE_STT_LANGUAGE=pt\nZAPVOICE_TTS__MAX_CHARS=500\nZAPVOICE_LLM_MODEL=dotenv\n")
    monkeypatch.setenv("ZAPVOICE_LLM_MODEL", "env")
    settings, origins = load()
    assert (settings.stt.language, settings.tts.max_chars, settings.llm.model) == ("pt", 500, "env")
    assert origins["stt.language"] == origins["tts.max_chars"] == "env"


def test_a_flat_name_given_to_the_class_is_refused_not_dropped():
    with pytest.raises(ValidationError, match="no section named whisper_model"):
        Settings(_env_file=None, whisper_model="small")


def test_every_old_name_maps_to_one_setting():
    places = list(flat_names().values())
    assert len(places) == len(set(places)) == sum(len(m.model_fields) for m in Settings.sections().values())
    assert nest({"agent_speculative_stt": False, "whisper_model": "small"}) == {
        "turns": {"speculative_stt": False}, "stt": {"whisper_model": "small"}}


def test_precedence_flag_over_c_over_env_over_file_over_default(tmp_path, monkeypatch):
    config = tmp_path / "zapvoice.toml"
    config.write_text('[llm]\nmodel = "file"\ntemperature = 0.1\n[vad]\nstop_db = 5.0\n[stt]\nbeam_size = 4\n'
                      'max_audio_s = 10.0\n')
    monkeypatch.setenv("ZAPVOICE_LLM_MODEL", "env")
    monkeypatch.setenv("ZAPVOICE_STT__MAX_AUDIO_S", "20")
    settings, origins = load(config, ["vad.stop_db=4", "stt.beam_size=2", "stt.max_audio_s=30"],
                             {"stt": {"beam_size": 3}})
    assert (settings.llm.temperature, origins["llm.temperature"]) == (0.1, "file")
    assert (settings.llm.model, origins["llm.model"]) == ("env", "env")
    assert (settings.vad.stop_db, origins["vad.stop_db"]) == (4.0, "-c")
    assert (settings.stt.max_audio_s, origins["stt.max_audio_s"]) == (30.0, "-c")
    assert (settings.stt.beam_size, origins["stt.beam_size"]) == (3, "flag")
    assert (settings.llm.url, origins["llm.url"]) == ("http://localhost:11434/v1", "default")


def test_a_config_file_or_assignment_naming_nothing_is_refused(tmp_path):
    config = tmp_path / "zapvoice.toml"
    config.write_text("[sst]\nlanguage = 'pt'\n")
    with pytest.raises(ConfigError, match="'sst' is not a section"):
        load(config)
    with pytest.raises(ValidationError, match="extra"):
        config.write_text("[stt]\nlangauge = 'pt'\n")
        load(config)
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        load(assignments=["stt.langauge=pt"])


@pytest.mark.parametrize("values, message", [
    ({"vad": {"start_db": 8, "stop_db": 9}}, "stop_db \\(9\\) must be below start_db \\(8\\)"),
    ({"gateway": {"keyfile": "key.pem"}}, "keyfile is set but certfile is not"),
    ({"agent": {"system_prompt": "Hi {name}"}}, "unknown placeholder {name}"),
    ({"agent": {"system_prompt": "Reply in JSON: {\"a\": 1}"}}, "literal braces"),
])
def test_cross_field_mistakes_are_refused(values, message):
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **values)


def test_prompt_with_known_placeholders_and_doubled_braces_and_log_level_in_any_case():
    settings = Settings(_env_file=None, agent={"system_prompt": "{caller} {{json}} {session_id}"},
                        service={"log_level": "WARNING"})
    assert settings.service.log_level == "warning"


def test_secrets_come_from_a_file_and_not_from_argv(tmp_path, capsys):
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    args = cli._parser().parse_args(["serve", "--token-file", str(secret)])
    assert cli._flag_values(args) == {"service": {"token": "s3cret"}}
    with pytest.raises(SystemExit) as refused:
        cli._parser().parse_args(["serve", "--token", "s3cret"])
    assert refused.value.code == 2 and "unrecognized arguments: --token" in capsys.readouterr().err
