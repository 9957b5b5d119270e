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
