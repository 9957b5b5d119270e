"""The LLM check at start-up and in /ready and /health: up, down, the wrong path, the wrong key or model."""

import asyncio
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from zapvoice.providers.llm_check import LlmProbe

from tests.support.settings import build_settings
from tests.test_cli import free_port
from tests.test_cli_gateway import start


def ollama_like(key: str | None = None) -> Starlette:
    """Ollama's OpenAI API: only under /v1, listing `llama3.2:latest`."""
    async def models(request: Request) -> JSONResponse:
        if key and request.headers.get("authorization") != f"Bearer {key}":
            return JSONResponse({"error": "invalid key"}, status_code=401)
        return JSONResponse({"object": "list", "data": [{"id": "llama3.2:latest"}, {"id": "qwen2.5:3b"}]})
    return Starlette(routes=[Route("/v1/models", models)])


def probe(url: str, app: Starlette | None = None, **flat) -> LlmProbe:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app)) if app else None
    return LlmProbe(build_settings(llm_url=url, **flat).llm, client=client)


def check(llm: LlmProbe):
    async def run():
        try:
            return await llm.check()
        finally:
            await llm.aclose()
    return asyncio.run(run())


def test_an_ollama_at_v1_with_the_model_is_ok():
    status = check(probe("http://ollama:11434/v1", ollama_like(), llm_model="llama3.2"))
    assert status.state == "ok" and status.detail == "answers, model llama3.2"


def test_a_url_without_v1_gets_the_hint():
    status = check(probe("http://ollama:11434", ollama_like()))
    assert status.state == "error"
    assert status.detail == ("GET /models answered 404: the OpenAI-compatible API is usually under /v1 (Ollama's "
                             "is): try --llm-url http://ollama:11434/v1")


def test_a_model_not_pulled_is_named_with_what_is_there():
    status = check(probe("http://ollama:11434/v1", ollama_like(), llm_model="mistral"))
    assert status.state == "error" and "does not serve the model 'mistral'" in status.detail
    assert "llama3.2:latest, qwen2.5:3b" in status.detail and "ollama pull mistral" in status.detail


def test_a_refused_key_says_which_setting():
    status = check(probe("http://llm/v1", ollama_like(key="right"), llm_api_key="wrong", llm_model="llama3.2"))
    assert status.state == "error" and "llm.api_key" in status.detail and "wrong" not in status.detail


def test_an_llm_that_is_down_is_unreachable():
    status = check(probe(f"http://user:secret@127.0.0.1:{free_port()}/v1"))
    assert status.state == "unreachable" and status.detail.startswith("cannot reach it (ConnectError")
    assert "secret" not in status.url


def test_a_contract_llm_is_left_to_its_first_reply_without_a_warning(caplog):
    llm = probe("http://provider:8000/llm")

    async def run():
        try:
            return await llm.check_and_warn()
        finally:
            await llm.aclose()

    with caplog.at_level(logging.INFO, logger="zapvoice.providers.llm_check"):
        status = asyncio.run(run())
    assert status.state == "unchecked"
    assert [r.levelno for r in caplog.records] == [logging.INFO]  # compose's agent: no warning at every start


def test_ready_stays_true_with_the_llm_down_and_says_so(make_service, fake_llm):
    down = make_service(llm_url=f"http://127.0.0.1:{free_port()}/v1")
    answer = httpx.get(f"{down.url}/ready").json()
    assert answer["ready"] is True and answer["llm"]["state"] == "unreachable"
    up = make_service(llm_url=f"{fake_llm.url}/v1", llm_model="echo")
    assert httpx.get(f"{up.url}/ready").json()["llm"] == {
        "state": "ok", "url": f"{fake_llm.url}/v1", "detail": "answers, model echo"}


@pytest.mark.parametrize("command", ["gateway", "agent"])
def test_the_agent_and_the_gateway_warn_at_start_and_show_it_in_health(model_files, fake_llm, tmp_path, command):
    port = free_port()
    (tmp_path / "token").write_text("instance-token")
    flags = {"gateway": ["--gateway-port", str(port)],
             "agent": ["--port", str(port), "--zuckzapgo-url", "http://127.0.0.1:9", "--zuckzapgo-token-file",
                       str(tmp_path / "token")]}[command]
    process = start(command, *flags, "--whisper-model", str(model_files["whisper"]), "--voice",
                    str(model_files["pt_voice"]), "--llm-url", fake_llm.url, "--llm-model", "echo",
                    ready_url=f"http://127.0.0.1:{port}/health")
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert health["llm"]["state"] == "error" and "try --llm-url" in health["llm"]["detail"]
    assert f"WARNING zapvoice.providers.llm_check: LLM at {fake_llm.url}: GET /models answered 404" in output
    assert process.returncode in (0, -15), output
