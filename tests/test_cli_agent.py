"""The agent's commands as a user runs them: `zapvoice zuckzapgo setup`, `zapvoice call`, `zapvoice agent`,
as subprocesses against the fake ZuckZapGo."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.support.fake_zuckzapgo import build_fake_zuckzapgo
from tests.support.servers import serve_in_thread
from tests.test_cli import ZAPVOICE, free_port, run

INSTANCE_TOKEN = "cli-instance-token-55e0"


@pytest.fixture()
def instance(request):
    running = serve_in_thread(build_fake_zuckzapgo(INSTANCE_TOKEN, enabled=getattr(request, "param", False)))
    yield running
    running.stop()


def models(model_files) -> list[str]:
    return ["--whisper-model", str(model_files["whisper"]), "--voice", str(model_files["pt_voice"]),
            "--no-auto-download"]


def test_setup_reports_what_it_changed_then_that_nothing_is_left(instance):
    env = {"ZAPVOICE_ZUCKZAPGO_URL": instance.url, "ZAPVOICE_ZUCKZAPGO_TOKEN": INSTANCE_TOKEN}
    first = run("zuckzapgo", "setup", env=env)
    assert first.returncode == 0, first.stderr
    assert "- callInboundMode: webhook -> manual" in first.stdout
    assert "- event subscriptions: Message -> Message, Call, CallOffer, CallAccept, CallTerminate, CallOfferNotice, CallRelayLatency" in first.stdout
    assert "- subscriptions read back: call events Call, CallOffer, CallAccept, CallTerminate, CallOfferNotice, " \
           "CallRelayLatency kept" in first.stdout
    assert "engine is ready" in first.stdout
    second = run("zuckzapgo", "setup", env=env)
    assert second.returncode == 0 and "nothing to change" in second.stdout
    assert INSTANCE_TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr


def test_setup_with_a_wrong_token_says_so(instance):
    result = run("zuckzapgo", "setup", "--zuckzapgo-url", instance.url, env={"ZAPVOICE_ZUCKZAPGO_TOKEN": "wrong"})
    assert result.returncode == 1 and "unauthorized" in result.stderr.lower() and "--zuckzapgo-token" in result.stderr


def test_the_instance_is_required():
    result = run("agent")
    assert result.returncode == 2 and "--zuckzapgo-url" in result.stderr


def test_call_refuses_what_is_not_a_phone_number():
    result = run("call", "+55 (21) 9999-abc")
    assert result.returncode == 2 and "digits only" in result.stderr


def test_call_on_an_instance_not_in_manual_mode_says_how_to_fix_it(instance, model_files, fake_llm):
    result = run("call", "+55 21 90000-0000", "--zuckzapgo-url", instance.url,
                 "--llm-url", f"{fake_llm.url}/v1", *models(model_files), env={"ZAPVOICE_ZUCKZAPGO_TOKEN": INSTANCE_TOKEN})
    assert result.returncode == 2 and "zapvoice zuckzapgo setup" in result.stderr


@pytest.mark.parametrize("instance", [True], indirect=True)
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_agent_answers_a_call_and_hangs_up_when_stopped(instance, model_files, fake_llm, tmp_path, stop_signal):
    port = free_port()
    process = subprocess.Popen(
        [ZAPVOICE, "agent", "--port", str(port), "--llm-url", f"{fake_llm.url}/v1", "--llm-model", "echo",
         "-c", f"agent.record_dir={tmp_path}", "-c", "zuckzapgo.poll_s=0.2", *models(model_files)],
        env={**os.environ, "ZAPVOICE_ZUCKZAPGO_URL": instance.url, "ZAPVOICE_ZUCKZAPGO_TOKEN": INSTANCE_TOKEN},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").json()["zuckzapgo"] == "reachable":
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.1)
        call_id = httpx.post(f"{instance.url}/_fake/inbound", json={"from": "5521955554444"}).json()["callId"]
        for _ in range(100):
            report = httpx.get(f"{instance.url}/_fake/calls/{call_id}").json()
            if report["heard_segments"]:
                break
            time.sleep(0.1)
        assert report["answered_at"] is not None and report["heard_segments"], "no greeting"
    finally:
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert httpx.get(f"{instance.url}/_fake/calls/{call_id}").json()["ended_by"] == "app"  # hung up on shutdown
    assert "answering call" in output and INSTANCE_TOKEN not in output
    assert list(tmp_path.rglob("*.jsonl"))
