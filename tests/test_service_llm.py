"""POST /llm forwarding to an OpenAI-compatible upstream, and every way the upstream can fail."""

import asyncio
import json
import logging
import socket

import httpx
import pytest

CONVERSATION = {
    "system": "Você é a recepcionista da Clínica Sorriso. Responda em uma frase.",
    "messages": [
        {"role": "user", "content": "Oi"},
        {"role": "assistant", "content": "Olá! Como posso ajudar?"},
        {"role": "user", "content": "Quero marcar uma consulta"},
    ],
}


def test_reply_is_forwarded_and_made_speakable(client, fake_llm):
    answer = client.post("/llm", json=CONVERSATION)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"reply": "Você disse: Quero marcar uma consulta"}
    sent = fake_llm.requests[-1]["json"]
    assert sent["messages"][0] == {"role": "system", "content": CONVERSATION["system"]}
    assert sent["messages"][1:] == CONVERSATION["messages"]
    assert sent["model"] == "echo" and sent["stream"] is False
    assert sent["max_tokens"] == 256 and sent["temperature"] == 0.7


def test_empty_system_prompt_is_not_sent(client, fake_llm):
    client.post("/llm", json={"messages": [{"role": "user", "content": "hi"}]})
    assert fake_llm.requests[-1]["json"]["messages"] == [{"role": "user", "content": "hi"}]


def test_curl_without_json_content_type_still_works(client):
    answer = client.post("/llm", content=b'{"system":"","messages":[{"role":"user","content":"oi"}]}',
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and answer.json()["reply"] == "Você disse: oi"


def test_reasoning_block_never_spoken(make_service):
    running = make_service(llm_model="think")
    answer = httpx.post(f"{running.url}/llm", json=CONVERSATION, headers=_auth())
    assert answer.json() == {"reply": "Olá! Tudo bem."}


def test_spoken_style_can_be_turned_off(make_service):
    running = make_service(llm_spoken_style=False)
    answer = httpx.post(f"{running.url}/llm", json=CONVERSATION, headers=_auth())
    assert answer.json()["reply"] == "**Você disse:** Quero marcar uma consulta 😊"


def test_api_key_goes_upstream_as_bearer(make_service, fake_llm):
    running = make_service(llm_api_key="sk-upstream-123")
    httpx.post(f"{running.url}/llm", json=CONVERSATION, headers=_auth())
    assert fake_llm.requests[-1]["headers"]["authorization"] == "Bearer sk-upstream-123"


@pytest.mark.parametrize(("model", "status", "says"), [
    ("error", 502, "model 'x' not found"),
    ("garbage", 502, "not an OpenAI chat completion"),
    ("empty", 502, "not an OpenAI chat completion"),
    ("slow", 504, "did not answer within 1 s"),
])
def test_upstream_failures(make_service, model, status, says):
    running = make_service(llm_model=model)
    answer = httpx.post(f"{running.url}/llm", json=CONVERSATION, headers=_auth(), timeout=10)
    assert answer.status_code == status
    assert says in answer.json()["error"]


def test_an_upstream_that_trickles_is_cut_at_the_timeout(make_service):
    running = make_service(llm_model="trickle-100-50", llm_timeout_s=0.3)  # a space every 50 ms for 5 s
    answer = httpx.post(f"{running.url}/llm", json=CONVERSATION, headers=_auth(), timeout=10)
    assert answer.status_code == 504 and "did not answer within 0.3 s" in answer.json()["error"]


def test_a_client_that_leaves_cancels_its_upstream_request(make_service, fake_llm):
    running = make_service(llm_model="trickle-1000-10", llm_timeout_s=30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{running.url}/llm", json=CONVERSATION, headers=_auth(), timeout=0.5)
    entry = fake_llm.requests[-1]
    assert entry["over"].wait(timeout=60)  # the upstream's trickle would last 10 s
    assert entry["disconnected"] is True


def test_abandoned_requests_give_their_upstream_connections_back(make_service):
    """The pool holds llm_max_connections; clients that gave up must not keep it full for the others."""
    running = make_service(llm_model="per-request", llm_timeout_s=30, llm_max_connections=2)

    async def scenario():
        async with httpx.AsyncClient(base_url=running.url, headers=_auth()) as http:
            async def abandoned():
                with pytest.raises(httpx.ReadTimeout):
                    await http.post("/llm", json={"system": "trickle-1000-10", "messages": CONVERSATION["messages"]},
                                    timeout=0.5)
            await asyncio.gather(*(abandoned() for _ in range(3)))
            return await http.post("/llm", json={"system": "echo", "messages": CONVERSATION["messages"]}, timeout=8)

    answer = asyncio.run(scenario())
    assert answer.status_code == 200 and answer.json() == {"reply": "Você disse: Quero marcar uma consulta"}


def test_credentials_an_upstream_repeats_are_masked(make_service, caplog):
    running = make_service(llm_model="echo-auth", llm_api_key="sk-upstream-123")
    with caplog.at_level(logging.DEBUG):
        answer = httpx.post(f"{running.url}/llm", json=CONVERSATION, headers=_auth())
    assert answer.status_code == 502
    assert "HTTP 401: invalid credentials: Authorization: Bearer ***" in answer.json()["error"]
    assert "sk-upstream-123" not in answer.text
    assert caplog.records and not [r for r in caplog.records if "sk-upstream-123" in r.getMessage()]


@pytest.mark.parametrize(("model", "says"), [
    ("nonstring", "content is not text"),
    ("gzip-4", "more than 65536 bytes"),  # 4 MiB of spaces in 4 KiB of gzip
    ("markdown-100", "more than 65536 bytes"),
])
def test_odd_answers_are_502(make_service, model, says):
    running = make_service(llm_model=model, llm_max_reply_bytes=65536)
    answer = httpx.post(f"{running.url}/llm", json=CONVERSATION, headers=_auth(), timeout=10)
    assert answer.status_code == 502 and says in answer.json()["error"]


def test_upstream_down_is_502(make_service):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    running = make_service(llm_url=f"http://127.0.0.1:{closed_port}/v1")
    answer = httpx.post(f"{running.url}/llm", json=CONVERSATION, headers=_auth())
    assert answer.status_code == 502
    assert "cannot reach the LLM" in answer.json()["error"]


@pytest.mark.parametrize(("body", "says"), [
    (b"not json", "not valid JSON"),
    (b"[]", "body"),
    (b'{"system": "x"}', "messages: Field required"),
    (b'{"messages": []}', "messages"),
    (b'{"messages": [{"role": "system", "content": "x"}]}', "messages.0.role"),
    (b'{"messages": [{"role": "user", "content": 42}]}', "messages.0.content"),
    (b'{"messages": [{"role": "user"}]}', "messages.0.content"),
    (b'{"system": 7, "messages": [{"role": "user", "content": "x"}]}', "system"),
])
def test_invalid_bodies_are_422(client, body, says):
    answer = client.post("/llm", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert says in answer.json()["error"]


def test_size_limits_are_422(client, service):
    many = {"messages": [{"role": "user", "content": "x"}] * (service.settings.llm.max_messages + 1)}
    answer = client.post("/llm", json=many)
    assert answer.status_code == 422 and "messages; the limit" in answer.json()["error"]
    long = {"messages": [{"role": "user", "content": "x" * (service.settings.llm.max_chars + 1)}]}
    answer = client.post("/llm", json=long)
    assert answer.status_code == 422 and "characters; the limit" in answer.json()["error"]


def _auth() -> dict:
    from tests.conftest import TOKEN
    return {"Authorization": f"Bearer {TOKEN}"}


def test_body_too_large_for_the_limits_is_413_before_parsing(client):
    many = json.dumps({"messages": [{"role": "user", "content": ""}] * 300_000}).encode()  # 9.9 MB
    for headers in ({}, {"Transfer-Encoding": "chunked"}):
        content = many if not headers else iter([many[i : i + 65536] for i in range(0, len(many), 65536)])
        answer = client.post("/llm", content=content, headers={"Content-Type": "application/json", **headers})
        assert answer.status_code == 413
        assert answer.json() == {"error": "the /llm body is larger than 655,296 bytes, the most llm.max_chars "
                                          "(50000) and llm.max_messages (200) can take"}


def test_too_many_messages_are_counted_before_they_are_validated(client, service):
    limit = service.settings.llm.max_messages
    for item in ({}, [], 0):  # none is a message: validating each would cost an error apiece
        answer = client.post("/llm", content=json.dumps({"messages": [item] * 200_000}, separators=",:").encode(),
                             headers={"Content-Type": "application/json"})
        assert answer.status_code == 422
        assert answer.json() == {"error": f"200000 messages; the limit is {limit}"}


def test_the_body_limit_takes_any_conversation_within_the_limits(client, service):
    settings = service.settings
    # The long message first: the fake upstream echoes the last one, and the reply has a limit of its own.
    worst = {"system": "", "messages": [{"role": "user", "content": "😊" * settings.llm.max_chars}]
             + [{"role": "user", "content": ""}] * (settings.llm.max_messages - 1)}
    body = json.dumps(worst, indent=4).encode()  # every character escaped to 12 bytes, and indented
    answer = client.post("/llm", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
