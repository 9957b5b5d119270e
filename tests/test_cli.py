"""The `zapvoice` command as a user runs it: start-up checks, messages, and a served request."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ZAPVOICE = str(Path(sys.executable).parent / "zapvoice")


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """The command on a free port unless the test names one: port 8000 may be anyone's, and a command checks
    its ports before anything else."""
    return subprocess.run([ZAPVOICE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "ZAPVOICE_PORT": str(free_port()), **(env or {})})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_public_address_without_a_token_gets_a_generated_one(tmp_path):
    result = run("serve", "--host", "0.0.0.0", "--model-dir", str(tmp_path), "--no-auto-download",
                 env={"ZAPVOICE_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2  # for the missing model, after the token
    assert "no token was given, so this one was generated" in result.stdout
    assert (tmp_path / "data" / "token").read_text().strip() in result.stdout


def test_missing_model_says_what_to_run(tmp_path):
    result = run("serve", "--model-dir", str(tmp_path), "--no-auto-download")
    assert result.returncode == 2
    assert f"run `zapvoice models pull base --model-dir {tmp_path}`" in result.stderr


def test_broken_model_stops_start_up(tmp_path, model_files):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (broken / name).write_bytes((model_files["whisper"] / name).read_bytes())
    (broken / "model.bin").write_bytes(b"\x00" * 1000)
    result = run("serve", "--whisper-model", str(broken), "--voices", str(model_files["pt_voice"]))
    assert result.returncode == 2
    assert "cannot load the Whisper model" in result.stderr and "replace it with a complete copy" in result.stderr


def test_invalid_setting_is_reported(tmp_path):
    result = run("serve", "--port", "eighty")
    assert result.returncode == 2 and "port" in result.stderr


def test_settings_table_lists_every_setting():
    from zapvoice.settings import flat_names

    table = run("config", "defaults", "--markdown").stdout
    for name in flat_names():
        assert f"`ZAPVOICE_{name.upper()}`" in table


def test_serve_end_to_end_with_env_and_flags(model_files):
    port = free_port()
    process = subprocess.Popen(
        [ZAPVOICE, "serve", "--whisper-model", str(model_files["whisper"]),
         "--voice", str(model_files["pt_voice"]), "--voice", str(model_files["en_voice"])],
        env={**os.environ, "ZAPVOICE_TOKEN": "cli-secret", "ZAPVOICE_PORT": str(port), "ZAPVOICE_LLM_URL": "http://127.0.0.1:9/v1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "service did not become ready"
            time.sleep(0.2)
        assert httpx.get(f"{url}/ready").json()["voices"] == ["pt_BR-test-medium", "en_US-test-medium"]
        answer = httpx.post(f"{url}/tts", json={"text": "Oi"}, headers={"Authorization": "Bearer cli-secret"})
        assert answer.status_code == 200 and answer.content[:4] == b"RIFF"
        down = httpx.post(f"{url}/llm", json={"messages": [{"role": "user", "content": "oi"}]},
                          headers={"Authorization": "Bearer cli-secret"})
        assert down.status_code == 502
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so supervisors see why it stopped
    assert process.returncode in (0, -15) and "Application shutdown complete" in output, output
    assert "cli-secret" not in output


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("zapvoice ")


def test_each_command_has_only_its_own_flags():
    models_help = run("models", "list", "--help").stdout
    assert "--model-dir" in models_help and "--barge-in" not in models_help and "--whisper-model" not in models_help
    serve_help = run("serve", "--help").stdout
    assert "--whisper-model" in serve_help and "--token-file" in serve_help and "--zuckzapgo-url" not in serve_help


def test_abbreviated_flags_are_refused():
    result = run("serve", "--whisper-mod", "small")
    assert result.returncode == 2 and "unrecognized arguments: --whisper-mod" in result.stderr


def test_config_show_says_where_each_value_came_from(tmp_path):
    config = tmp_path / "zapvoice.toml"
    config.write_text('[llm]\nmodel = "from-file"\n')
    result = run("-c", "stt.beam_size=2", "config", "show", "--config", str(config), "-c", "vad.end_silence_ms=800",
                 env={"ZAPVOICE_STT_LANGUAGE": "pt", "ZAPVOICE_TOKEN": "hidden-token"})
    shown = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert shown["llm.model"] == ["from-file", "file"] and shown["stt.language"] == ["pt", "env"]
    assert shown["vad.end_silence_ms"] == ["800", "-c"] and shown["stt.beam_size"] == ["2", "-c"]
    assert shown["service.host"] == ["127.0.0.1", "default"]
    assert shown["service.token"] == ["**********", "env"] and "hidden-token" not in result.stdout


def test_a_cross_field_mistake_stops_start_up_with_a_clear_message():
    result = run("serve", "-c", "vad.stop_db=20")
    assert result.returncode == 2
    assert "vad: stop_db (20) must be below start_db (9)" in result.stderr and "Traceback" not in result.stderr


def test_a_pipe_closed_early_is_not_a_traceback():
    process = subprocess.Popen([ZAPVOICE, "config", "defaults", "--markdown"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # before the command can write a line: every write meets a closed pipe
    _, errors = process.communicate(timeout=60)
    assert "Traceback" not in errors and "BrokenPipeError" not in errors
