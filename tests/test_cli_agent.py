"""The agent's commands as a user runs them: `zapvoice zuckzapgo setup`, `zapvoice call`, `zapvoice agent`,
as subprocesses against the fake ZuckZapGo."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import TOKEN
from tests.support.fake_zuckzapgo import build_fake_zuckzapgo
from tests.support.servers import serve_in_thread
from tests.test_cli import free_port, run
from tests.test_cli_gateway import start

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


def start_agent(instance, model_files, fake_llm, tmp_path, *args: str) -> tuple[subprocess.Popen, int]:
    """`zapvoice agent` on a free port, once its first poll reached the instance; (the process, its port)."""
    port = free_port()
    process = start("agent", "--port", str(port), "--llm-url", f"{fake_llm.url}/v1", "--llm-model", "echo",
                    "-c", f"agent.record_dir={tmp_path}", "-c", "zuckzapgo.poll_s=0.2", *models(model_files), *args,
                    ready_url=f"http://127.0.0.1:{port}/health",
                    env={"ZAPVOICE_ZUCKZAPGO_URL": instance.url, "ZAPVOICE_ZUCKZAPGO_TOKEN": INSTANCE_TOKEN},
                    ready=lambda response: response.json()["zuckzapgo"] == "reachable")
    return process, port


def ring_until_greeted(instance) -> str:
    """An inbound call on the fake instance, followed until the agent's greeting is heard; its id."""
    call_id = httpx.post(f"{instance.url}/_fake/inbound", json={"from": "5521955554444"}).json()["callId"]
    for _ in range(100):
        report = httpx.get(f"{instance.url}/_fake/calls/{call_id}").json()
        if report["heard_segments"]:
            break
        time.sleep(0.1)
    assert report["answered_at"] is not None and report["heard_segments"], "no greeting"
    return call_id


@pytest.mark.parametrize("instance", [True], indirect=True)
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_agent_answers_a_call_and_hangs_up_when_stopped(instance, model_files, fake_llm, tmp_path, stop_signal):
    process, _ = start_agent(instance, model_files, fake_llm, tmp_path)
    try:
        call_id = ring_until_greeted(instance)
    finally:
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert httpx.get(f"{instance.url}/_fake/calls/{call_id}").json()["ended_by"] == "app"  # hung up on shutdown
    assert "answering call" in output and INSTANCE_TOKEN not in output
    assert list(tmp_path.rglob("*.jsonl"))


@pytest.mark.parametrize("instance", [True], indirect=True)
def test_a_zuckzapgo_call_takes_the_only_place_from_the_playground(instance, model_files, fake_llm, tmp_path):
    process, port = start_agent(instance, model_files, fake_llm, tmp_path, "-c", "agent.max_calls=1",
                                "-c", f"service.token={TOKEN}")

    async def open_playground() -> dict:
        async with connect(f"ws://127.0.0.1:{port}/playground/ws") as browser:
            await browser.send(json.dumps({"type": "start", "token": TOKEN}))
            return json.loads(await asyncio.wait_for(browser.recv(), 30))
    try:
        ring_until_greeted(instance)
        refusal = asyncio.run(open_playground())
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert refusal == {"type": "error", "error": "1 calls in progress (agent.max_calls)"}, output
