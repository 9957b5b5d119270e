"""The gateway commands as a user runs them: `zapvoice gateway --echo` and `zapvoice serve --gateway-port`,
as subprocesses, with the test's gateway client calling in."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable

import httpx

from tests.support.gateway_caller import GatewayCaller
from tests.test_cli import ZAPVOICE, free_port, run


def start(*args: str, ready_url: str, env: dict | None = None,
          ready: Callable[[httpx.Response], bool] = lambda response: response.status_code == 200) -> subprocess.Popen:
    """The command, once GET `ready_url` answers as `ready` wants."""
    process = subprocess.Popen([ZAPVOICE, *args], env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            if ready(httpx.get(ready_url)):
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"did not start: {process.communicate()[0]}")
        time.sleep(0.1)


async def call_then_signal(process: subprocess.Popen, port: int, greeted: bool) -> GatewayCaller:
    """Call in, (wait for the greeting,) then stop the command: the call in progress is hung up."""
    async with GatewayCaller(f"ws://127.0.0.1:{port}") as phone:
        await phone.call()
        if greeted:
            await phone.until(lambda: phone.segments())
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(phone.closed.wait(), 20)
    return phone


def test_gateway_settings_are_checked_before_start():
    rate = run("gateway", "--echo", "--sample-rate", "44100")
    action = run("gateway", "--echo", "-c", "gateway.dtmf_actions=0=explode")
    assert rate.returncode == 2 and "8000 or 16000" in rate.stderr
    assert action.returncode == 2 and "DIGIT=hangup or DIGIT=send:DIGITS" in action.stderr


def test_the_echo_gateway_needs_no_model_and_hangs_up_its_calls_when_stopped(tmp_path):
    port = free_port()
    process = start("gateway", "--echo", "--gateway-port", str(port), "--model-dir", str(tmp_path),
                    "--no-auto-download", ready_url=f"http://127.0.0.1:{port}/health")
    try:
        phone = asyncio.run(call_then_signal(process, port, greeted=False))
    finally:
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert [e["event"] for _, e in phone.events] == ["answer", "hangup"]
    assert "answered call sess-0001" in output and "connection open" not in output


def test_serve_runs_the_gateway_beside_the_service_on_the_same_engines(model_files, fake_llm, tmp_path):
    port, gateway_port = free_port(), free_port()
    process = start("serve", "--port", str(port), "--gateway-port", str(gateway_port),
                    "--whisper-model", str(model_files["whisper"]), "--voice", str(model_files["pt_voice"]),
                    "--llm-url", f"{fake_llm.url}/v1", "-c", f"agent.record_dir={tmp_path}",
                    ready_url=f"http://127.0.0.1:{port}/ready")
    try:
        phone = asyncio.run(call_then_signal(process, gateway_port, greeted=True))
    finally:
        output, _ = process.communicate(timeout=30)
    assert process.returncode in (0, -15), output
    assert [e["event"] for _, e in phone.events] == ["answer", "hangup"]  # hung up before the engines closed
    assert "Application shutdown complete" in output and "Traceback" not in output
    (record,) = tmp_path.rglob("*.jsonl")
    assert '"reason": "zapvoice stopped"' in record.read_text()
