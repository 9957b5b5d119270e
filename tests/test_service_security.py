"""Authentication, body limits and the shape of every error."""

import logging

import httpx
import numpy as np
import pytest

from tests.conftest import TOKEN
from zapvoice.audio import wav_bytes


@pytest.mark.parametrize("path", ["/stt", "/llm", "/tts"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz", f"bearer{TOKEN}"])
def test_providers_need_the_token(service, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    answer = httpx.post(service.url + path, json={"text": "x"}, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "token" in answer.json()["error"]


def test_scheme_is_case_insensitive(service):
    answer = httpx.post(service.url + "/tts", json={"text": "Oi"}, headers={"Authorization": f"bearer {TOKEN}"})
    assert answer.status_code == 200


def test_health_and_ready_are_public(service):
    assert httpx.get(service.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(service.url + "/ready").json()
    assert ready["ready"] is True and ready["voices"] == ["pt_BR-test-medium", "en_US-test-medium"]


def test_token_is_never_logged(service, caplog):
    caplog.set_level(logging.DEBUG)
    httpx.post(service.url + "/tts", json={"text": "Oi"}, headers={"Authorization": f"Bearer {TOKEN}"})
    httpx.post(service.url + "/tts", json={"text": "Oi"}, headers={"Authorization": "Bearer guess-123"})
    assert TOKEN not in caplog.text and "guess-123" not in caplog.text


def test_no_token_configured_means_open(make_service):
    running = make_service(token=None)
    assert httpx.post(running.url + "/tts", json={"text": "Oi"}).status_code == 200


def test_body_over_the_limit_by_content_length(make_service):
    running = make_service(max_body_bytes=64 * 1024)
    big = wav_bytes(np.zeros(40_000, np.float32), 16000)
    answer = httpx.post(running.url + "/stt", content=big, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 413 and "larger than 65536 bytes" in answer.json()["error"]


def test_body_over_the_limit_while_streaming(make_service):
    running = make_service(max_body_bytes=64 * 1024)

    def chunks():
        for _ in range(20):
            yield b"\x00" * 8192

    answer = httpx.post(running.url + "/stt", content=chunks(),
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/octet-stream"})
    assert answer.status_code == 413
    assert httpx.get(running.url + "/health").status_code == 200


def test_unknown_route_and_wrong_method_are_json(service):
    missing = httpx.get(service.url + "/nope")
    assert missing.status_code == 404 and "POST /stt" in missing.json()["error"]
    wrong = httpx.get(service.url + "/stt")
    assert wrong.status_code == 405 and "GET is not allowed" in wrong.json()["error"]


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
@pytest.mark.parametrize(("host", "api_docs", "served"), [("127.0.0.1", "auto", True), ("0.0.0.0", "auto", False),
                                                           ("0.0.0.0", "on", True), ("127.0.0.1", "off", False)])
def test_api_docs_are_off_by_default_on_a_public_address(make_service, path, host, api_docs, served):
    running = make_service(host=host, api_docs=api_docs)  # served on loopback whatever `host` says
    answer = httpx.get(running.url + path)
    assert answer.status_code == (200 if served else 404)
    if not served:
        assert "no route" in answer.json()["error"]


def test_head_on_health_and_ready(service):
    for path in ("/health", "/ready"):
        answer = httpx.head(service.url + path)
        assert answer.status_code == 200 and answer.content == b""


def test_unreadable_audio_names_no_object_address(client):
    answer = client.post("/stt", content=b"RIFF" + b"x" * 100, headers={"Content-Type": "audio/wav"})
    assert answer.status_code == 422
    assert answer.json()["error"] == "cannot read the audio: Format not recognised."


def test_a_client_leaving_mid_body_is_one_info_line(service, caplog):
    import socket
    import time

    caplog.set_level(logging.DEBUG)
    body = wav_bytes(np.zeros(16000 * 10, np.float32), 16000)
    head = (f"POST /stt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: audio/wav\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.sendall(head + body[:4096])
    deadline = time.monotonic() + 10
    while "went away" not in caplog.text:
        assert time.monotonic() < deadline, "the disconnect was never logged"
        time.sleep(0.02)
    gone = [r for r in caplog.records if "went away" in r.message]
    assert [(r.levelno, r.exc_info) for r in gone] == [(logging.INFO, None)]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_token_in_the_query_string_is_masked_in_the_access_log(make_settings, capfd):
    from zapvoice.providers.service import create_app

    from tests.support.servers import serve_config_in_thread
    from zapvoice.composition import service_engines
    from zapvoice.http_server import server_config

    settings = make_settings()
    running = serve_config_in_thread(server_config(create_app(settings, service_engines(settings)), settings.service,
                                                   host="127.0.0.1", port=0, log_level="info"))
    try:
        assert httpx.get(running.url + "/health?token=leaky-123&x=1&Secret=s3").status_code == 200
    finally:
        running.stop()
    out = capfd.readouterr().out
    assert "/health?token=***&x=1&Secret=***" in out and "leaky-123" not in out and "s3" not in out
