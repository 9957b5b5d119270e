"""What a new user meets on the first start: taken ports, --allow-no-auth, before any model loads."""

import contextlib
import json
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.fake_hub import build_fake_hub
from tests.support.servers import serve_in_thread
from tests.support.settings import build_settings
from tests.test_cli import ZAPVOICE, free_port, run
from tests.test_models_pull import FABER, INCOMPLETE_WHISPER_REPO, SMALL, VOICE_REPO
from tests.test_models_pull import run as run_online


def error_message(stderr: str) -> str:
    """From the command's own message on: the log lines before it start with a date."""
    return stderr[stderr.index("\nzapvoice: ") + 1:] if not stderr.startswith("zapvoice: ") else stderr


@contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(("command", "flag"), [
    (["serve"], "--port"), (["serve", "--port", str(free_port())], "--gateway-port"),
    (["agent", "--zuckzapgo-url", "http://127.0.0.1:9"], "--port"), (["gateway", "--echo"], "--gateway-port"),
])
def test_a_taken_port_stops_start_up_before_the_models_load(tmp_path, command, flag):
    """The model named does not exist: reaching it would be a model error, not the port's line."""
    with taken_port() as port:
        result = run(*command, flag, str(port), "--whisper-model", str(tmp_path / "absent"),
                     env={"ZAPVOICE_ZUCKZAPGO_TOKEN": "t"}, timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"zapvoice: cannot listen on 127.0.0.1:{port} ({flag}): Address already in use: another process is "
        f"using it; stop it or pass another {flag}"]


def test_allow_no_auth_on_a_public_address_is_logged(tmp_path):
    port = free_port()
    result = run("serve", "--host", "0.0.0.0", "--allow-no-auth", "--port", str(port), "--model-dir", str(tmp_path),
                 "--no-auto-download")
    assert result.returncode == 2  # the model is missing; the warning came first
    assert f"with no token (--allow-no-auth): anyone who reaches port {port}" in result.stderr
    quiet = run("serve", "--allow-no-auth", "--model-dir", str(tmp_path), "--no-auto-download")
    assert "no token" not in quiet.stderr


def test_offline_every_missing_model_is_listed_with_its_source_and_the_ways_out(tmp_path):
    """The suite runs with HF_HUB_OFFLINE=1 (conftest): the hub does not answer, as on a machine offline."""
    result = run("serve", "--model-dir", str(tmp_path), "--voice", "pt_BR-faber-medium", "--voice",
                 "en_US-lessac-medium")
    assert result.returncode == 2
    message = error_message(result.stderr)
    assert message.startswith("zapvoice: 3 of the models cannot be used:")
    assert "could not fetch whisper base from https://huggingface.co/Systran/faster-whisper-base: " \
           "OfflineModeIsEnabled" in message
    for voice in ("pt_BR-faber-medium", "en_US-lessac-medium"):
        assert f"piper model {voice} (from https://huggingface.co/rhasspy/piper-voices" in message
    assert message.count("not fetched: the hub did not answer") == 2
    for way_out in ("--whisper-model DIR", "--voice FILE.onnx", "--hub-url URL", "`zapvoice models pull`",
                    f"to {tmp_path} here"):
        assert way_out in message
    assert "Traceback" not in result.stderr and "check your internet connection" not in message


def test_a_missing_end_of_turn_model_is_in_the_same_list(tmp_path, model_files):
    """turns.end_of_turn = smart-turn without its model, beside a missing Whisper: one message names both."""
    result = run("gateway", "--gateway-port", str(free_port()), "--model-dir", str(tmp_path),
                 "--voice", str(model_files["pt_voice"]), "-c", "turns.end_of_turn=smart-turn")
    assert result.returncode == 2
    message = error_message(result.stderr)
    assert message.startswith("zapvoice: 2 of the models cannot be used:")
    assert "could not fetch whisper base from https://huggingface.co/Systran/faster-whisper-base" in message
    assert "turn model smart-turn-v3.2 (from https://huggingface.co/pipecat-ai/smart-turn-v3 " \
           f"(smart-turn-v3.2-cpu.onnx)) is not in {tmp_path}: run `zapvoice models pull smart-turn-v3.2 " \
           f"--model-dir {tmp_path}`; not fetched: the hub did not answer for the one above" in message
    assert "-c turns.smart_turn_model=FILE.onnx" in message and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def hub():
    running = serve_in_thread(build_fake_hub({SMALL.repo: INCOMPLETE_WHISPER_REPO, FABER.repo: VOICE_REPO}))
    yield running
    running.stop()


def test_with_the_hub_up_each_model_it_lacks_is_listed(hub, tmp_path):
    """small's repository lacks model.bin, cadu is not in the fake hub at all; faber is fetched."""
    result = run_online("serve", "--hub-url", hub.url, "--model-dir", str(tmp_path / "models"), "--whisper-model",
                        "small", "--voice", "pt_BR-faber-medium", "--voice", "pt_BR-cadu-medium", "--allow-no-auth",
                        home=tmp_path)  # no token generated: run_online leaves ZAPVOICE_DATA_DIR out
    assert result.returncode == 2
    message = error_message(result.stderr)
    assert message.startswith("zapvoice: 2 of the models cannot be used:")
    assert f"could not fetch whisper small from {hub.url}/{SMALL.repo}: model.bin missing after the download" \
           in message
    assert f"could not fetch piper pt_BR-cadu-medium from {hub.url}/rhasspy/piper-voices" in message
    assert "faber" not in message and "Ways out:" in message
    assert (tmp_path / "models" / "piper" / "pt_BR-faber-medium" / FABER.file).is_file()


def broken_voice(tmp_path, model_files, onnx: bytes | None = None, config: bytes | None = None):
    source = model_files["pt_voice"]
    voice = tmp_path / "pt_BR-broken-medium.onnx"
    voice.write_bytes(source.read_bytes() if onnx is None else onnx)
    Path(f"{voice}.json").write_bytes(Path(f"{source}.json").read_bytes() if config is None else config)
    return voice


@pytest.mark.parametrize(("onnx", "config", "says"), [
    (b"\x08\x07cut short", None, "the file is not a valid ONNX model, probably a cut-short download"),
    (None, b'{"audio": ', "its pt_BR-broken-medium.onnx.json is not valid JSON"),
])
def test_a_broken_voice_says_which_file_and_what_is_wrong(tmp_path, model_files, onnx, config, says):
    voice = broken_voice(tmp_path, model_files, onnx, config)
    result = run("serve", "--whisper-model", str(model_files["whisper"]), "--voice", str(model_files["en_voice"]),
                 "--voice", str(voice))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"zapvoice: cannot load the Piper voice {voice}: {says}" in result.stderr
    assert "replace it with a complete copy" in result.stderr


def test_a_voice_broken_in_the_model_dir_is_fetched_again(tmp_path, model_files):
    voice_dir = tmp_path / "piper" / "pt_BR-faber-medium" / Path(FABER.file).parent
    voice_dir.mkdir(parents=True)
    voice = broken_voice(voice_dir, model_files, onnx=b"\x08\x07cut short").rename(voice_dir / "pt_BR-faber-medium.onnx")
    Path(f"{voice_dir / 'pt_BR-broken-medium.onnx'}.json").rename(f"{voice}.json")
    result = run("serve", "--model-dir", str(tmp_path), "--whisper-model", str(model_files["whisper"]),
                 "--voice", "pt_BR-faber-medium")
    assert f"fetch it again with `zapvoice models pull pt_BR-faber-medium --force --model-dir {tmp_path}`" \
           in result.stderr, result.stderr


def test_a_compute_type_the_cpu_cannot_run_is_a_setting_not_a_damaged_model(model_files):
    result = run("serve", "--whisper-model", str(model_files["whisper"]), "--voice", str(model_files["pt_voice"]),
                 "-c", "stt.whisper_compute_type=float16")
    assert result.returncode == 2
    assert "with stt.whisper_compute_type=float16" in result.stderr and "This is a setting, not a damaged model" \
        in result.stderr and "-c stt.whisper_compute_type=int8" in result.stderr
    assert "models pull" not in result.stderr and "replace it" not in result.stderr


def test_the_first_start_hands_over_the_token_and_later_starts_keep_it_quiet(tmp_path, model_files):
    data = tmp_path / "data"
    port = free_port()
    args = ("serve", "--host", "0.0.0.0", "--port", str(port), "--model-dir", str(tmp_path), "--no-auto-download")
    first = run(*args, env={"ZAPVOICE_DATA_DIR": str(data)})
    token_file = data / "token"
    token = token_file.read_text().strip()
    assert len(token) == 32 and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert f"saved in {token_file} (mode 0600)" in first.stdout and f"\n    {token}\n" in first.stdout
    paste = first.stdout[first.stdout.index("-d '") + 4:first.stdout.rindex("'")]
    host = socket.gethostname()
    assert json.loads(paste) == {
        "callsEnabled": True, "callInboundMode": "ai", "callSttUrl": f"http://{host}:{port}/stt",
        "callLlmUrl": f"http://{host}:{port}/llm", "callTtsUrl": f"http://{host}:{port}/tts",
        "callProviderToken": token}

    later = run(*args, env={"ZAPVOICE_DATA_DIR": str(data)})
    assert token not in later.stdout + later.stderr
    assert f"provider token: the one in {token_file}" in later.stderr
    assert f"data directory {data}; call records in {data / 'calls'}" in later.stderr
    assert token_file.read_text().strip() == token

    token_file.chmod(0o644)
    assert f"{token_file} can be read by other users" in run(*args, env={"ZAPVOICE_DATA_DIR": str(data)}).stderr


def test_an_explicit_token_or_allow_no_auth_generates_nothing(tmp_path):
    for extra, env in ((["--allow-no-auth"], {}), ([], {"ZAPVOICE_TOKEN": "given"})):
        result = run("serve", "--model-dir", str(tmp_path), "--no-auto-download", *extra,
                     env={"ZAPVOICE_DATA_DIR": str(tmp_path / "data"), **env})
        assert result.returncode == 2 and "generated" not in result.stdout
        assert not (tmp_path / "data" / "token").exists()


def test_an_unwritable_data_dir_says_what_to_do(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run("serve", "--model-dir", str(tmp_path), env={"ZAPVOICE_DATA_DIR": str(blocker / "data")})
    assert result.returncode == 2
    assert "cannot create the token file" in result.stderr or "Not a directory" in result.stderr, result.stderr


def test_call_records_live_in_the_data_directory(tmp_path):
    assert build_settings(data_dir=str(tmp_path)).agent.record_dir == tmp_path / "calls"
    assert build_settings(data_dir=str(tmp_path), agent_record_dir="mine").agent.record_dir == tmp_path / "mine"
    assert build_settings(data_dir=str(tmp_path), agent_record_dir="/srv/calls").agent.record_dir == Path("/srv/calls")
    assert build_settings(data_dir=str(tmp_path), agent_record_dir="").agent.record_dir is None


def test_the_generated_token_is_the_one_the_service_asks_for(tmp_path, model_files):
    port = free_port()
    process = subprocess.Popen(
        [ZAPVOICE, "serve", "--port", str(port), "--whisper-model", str(model_files["whisper"]), "--voice",
         str(model_files["pt_voice"]), "--llm-url", f"http://127.0.0.1:{free_port()}/v1"],
        env={**os.environ, "ZAPVOICE_DATA_DIR": str(tmp_path)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.1)
        token = (tmp_path / "token").read_text().strip()
        assert httpx.post(f"{url}/tts", json={"text": "Oi"}).status_code == 401
        assert httpx.post(f"{url}/tts", json={"text": "Oi"}, headers={"Authorization": f"Bearer {token}"}
                          ).status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=20)
