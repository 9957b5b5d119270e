"""The HTTP edge against hostile clients (zapvoice/http_server.py): header size, slow and idle connections,
the connection cap, malformed requests, each over a raw socket to the real service."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import TOKEN
from tests.support.servers import serve_config_in_thread
from zapvoice.http_server import connection_limit, server_config

BOUND_S = 15  # the longest a test waits for the server to act; the limits under test are far shorter


def answer_of(port: int, payload: bytes, drip: bytes | None = None) -> tuple[int | None, dict, bytes]:
    """Send `payload` (then `drip`, a byte at a time, while the server says nothing) and read until the
    server closes: the status, headers and body (status None: closed without an answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND_S) as sock:
        sock.sendall(payload)
        data = b""
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            sock.settimeout(0.05 if drip else BOUND_S)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                sock.sendall(drip)
                continue
            if not chunk:
                break
            data += chunk
        else:
            pytest.fail("the server kept the connection open")
    if not data:
        return None, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def error_of(port: int, payload: bytes, drip: bytes | None = None) -> tuple[int, str]:
    status, headers, body = answer_of(port, payload, drip)
    assert status is not None, "closed without an answer"
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)["error"]


def get(path: str, *headers: str) -> bytes:
    return ("\r\n".join([f"GET {path} HTTP/1.1", "Host: x", *headers]) + "\r\n\r\n").encode()


@pytest.fixture(scope="module")
def edge(make_service):
    return make_service(max_header_bytes=16 * 1024, header_timeout_s=0.3, body_timeout_s=0.3, keep_alive_s=0.3)


# --- header size ---------------------------------------------------------------------------------


def test_headers_over_the_limit_get_431(edge):
    status, error = error_of(edge.port, get("/health", "X-Big: " + "a" * 20_000))
    assert status == 431 and "larger than 16384 bytes" in error


def test_a_header_line_that_never_ends_gets_431(edge):
    status, _ = error_of(edge.port, b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 40_000)
    assert status == 431


def test_many_small_headers_count_together(edge):
    many = [f"X-H{i}: {'v' * 30}" for i in range(600)]
    assert error_of(edge.port, get("/health", *many))[0] == 431


def test_headers_under_the_limit_pass(edge):
    status, _, body = answer_of(edge.port, get("/health", "X-Big: " + "a" * 8_000, "Connection: close"))
    assert status == 200 and json.loads(body) == {"status": "ok"}


# --- slow and idle connections --------------------------------------------------------------------


def test_headers_dripping_in_get_408(edge):
    status, error = error_of(edge.port, b"GET /health HTTP/1.1\r\nX-Slow: ", drip=b"a")
    assert status == 408 and "headers did not arrive within 0.3 s" in error


def test_a_connection_that_sends_nothing_gets_408(edge):
    assert error_of(edge.port, b"")[0] == 408


def test_a_body_dripping_in_gets_408(edge):
    head = (f"POST /llm HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 10000\r\n\r\n"
            '{"messages": ').encode()
    status, error = error_of(edge.port, head, drip=b" ")
    assert status == 408 and "body did not arrive within 0.3 s" in error


def test_an_idle_kept_alive_connection_is_closed(edge):
    status, _, body = answer_of(edge.port, get("/health"))
    assert status == 200 and body == b'{"status":"ok"}'  # then the server closed it, without a second answer


def test_connections_over_the_cap_get_503_and_one_log_line(make_settings, caplog):
    caplog.set_level(logging.INFO, logger="zapvoice.http_server")
    from zapvoice.providers.service import create_app

    from zapvoice.composition import service_engines

    settings = make_settings(max_connections=2)
    running = serve_config_in_thread(server_config(create_app(settings, service_engines(settings)), settings.service,
                                                   host="127.0.0.1", port=0, log_level="warning"))
    held = [socket.create_connection(("127.0.0.1", running.port), timeout=BOUND_S) for _ in range(2)]
    try:
        for sock in held:  # an answer proves the server counts the connection
            sock.sendall(get("/health"))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        for _ in range(2):
            status, headers, body = answer_of(running.port, get("/health"))
            assert status == 503 and headers["retry-after"] == "1" and "too many" in json.loads(body)["error"]
        assert [r.message for r in caplog.records].count(
            "2 connections are open, the cap (service.max_connections): new ones get 503 until some close") == 1
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + BOUND_S
    while answer_of(running.port, get("/health", "Connection: close"))[0] != 200:
        assert time.monotonic() < deadline, "still refused after the held connections closed"
    assert any("after refusing 2 at the cap" in r.message for r in caplog.records)
    running.stop()


def test_the_cap_fits_the_open_file_limit(caplog):
    assert connection_limit(1000, 20_000) == 1000
    assert connection_limit(1000, 256) == 160  # 64 for models and files, 32 for refusals
    assert "open-file limit (256)" in caplog.text


def test_start_up_raises_the_soft_open_file_limit_to_the_hard_one():
    script = ("import resource; from zapvoice.http_server import raise_open_file_limit; "
              "resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
              "print(raise_open_file_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)[0] == "
              "resource.getrlimit(resource.RLIMIT_NOFILE)[1])")
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip() == "True"


# --- malformed requests ------------------------------------------------------------------------

MALFORMED = {
    "NUL in a header": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "CR in a header": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "space in a header name": b"GET /health HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n",
    "no colon": b"GET /health HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
    "duplicate Content-Length": b"POST /tts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "Content-Length and Transfer-Encoding": b"POST /tts HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "Content-Length: abc": b"POST /tts HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "Transfer-Encoding: gzip": b"POST /tts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "bad chunk size": b"POST /tts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    "no Host on HTTP/1.1": b"GET /health HTTP/1.1\r\n\r\n",
    "space in the target": b"GET /hea lth HTTP/1.1\r\nHost: x\r\n\r\n",
    "byte 0xff in the target": b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    "binary garbage": b"\x00\x01\x02\x03garbage\r\n\r\n",
    "TLS ClientHello": bytes.fromhex("16030100a5010000a10303") + bytes(range(32)) + b"\x00" * 130,
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_get_a_json_400(service, payload):
    status, error = error_of(service.port, payload)
    assert status == 400 and error.startswith("malformed HTTP request: ")
    assert "bytearray" not in error  # the client's bytes are not echoed


@pytest.mark.parametrize("payload", [b"FOO /health HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                                     b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n",
                                     b"GET /health HTTP/1.1\nHost: x\nConnection: close\n\n"],
                         ids=["method FOO", "HTTP/2 preface", "HTTP/1.2", "LF-only"])
def test_odd_but_parseable_requests_get_json(service, payload):
    status, headers, body = answer_of(service.port, payload.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
    assert status is not None and status < 500 and headers["content-type"] == "application/json"
    assert json.loads(body)


def test_a_websocket_upgrade_gets_a_json_404(service):
    status, error = error_of(service.port, get("/stt", "Upgrade: websocket", "Connection: Upgrade",
                                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                               "Sec-WebSocket-Version: 13"))
    assert status == 404 and error == "no WebSocket endpoint at /stt"
