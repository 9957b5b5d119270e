"""OpenAIChat.stream against the fake upstream: pieces as they come, reasoning, the end_call tool, every failure."""

import asyncio
import contextlib
import logging
import socket
import time

import pytest
from zapvoice.providers.contract_clients import ContractChat
from zapvoice.providers.contracts import ToolCall
from zapvoice.providers.errors import ProviderError
from zapvoice.providers.llm import OpenAIChat, _ReasoningFilter
from zapvoice.providers.spoken_text import to_spoken

from tests.conftest import TOKEN

SYSTEM = "Seja breve."
HELLO = [{"role": "user", "content": "oi tudo bem"}]
ECHO = "**Você disse:** oi tudo bem 😊"
GOODBYE = ["Obrigado ", "pela ", "ligação, ", "tchau!"]


def run(chat, work):
    """`work(chat)` on a fresh event loop, then close the client (its pool belongs to that loop)."""
    async def main():
        try:
            return await work(chat)
        finally:
            await chat.aclose()
    return asyncio.run(main())


END_CALL_TOOL = {"type": "function", "function": {"name": "end_call", "description": "Hang up.",
                                                  "parameters": {"type": "object", "properties": {}}}}
OTHER_TOOL = {"type": "function", "function": {"name": "transfer", "description": "Transfer the call.",
                                               "parameters": {"type": "object", "properties": {}}}}


def streamed(chat, end_call_tool: bool = False) -> list:
    async def collect(chat):
        return [item async for item in chat.stream(SYSTEM, HELLO, [END_CALL_TOOL] if end_call_tool else [])]
    return run(chat, collect)


def test_pieces_are_the_raw_reply_in_several_parts(make_settings, fake_llm):
    async def both(chat):
        return [item async for item in chat.stream(SYSTEM, HELLO)], await chat.reply(SYSTEM, HELLO)

    pieces, reply = run(OpenAIChat(make_settings().llm), both)
    assert len(pieces) > 1 and all(isinstance(piece, str) and piece for piece in pieces)
    assert "".join(pieces) == ECHO and to_spoken(ECHO) == reply
    streaming, whole = fake_llm.requests[-2]["json"], fake_llm.requests[-1]["json"]
    assert streaming["stream"] is True and "tools" not in streaming
    assert streaming == whole | {"stream": True}
    assert fake_llm.requests[-2]["disconnected"] is False


def test_pieces_arrive_as_the_model_generates_them(make_settings):
    async def timed(chat):
        start = time.monotonic()
        return [(piece, time.monotonic() - start) async for piece in chat.stream(SYSTEM, HELLO)]

    arrivals = run(OpenAIChat(make_settings(llm_model="pace-200-20").llm), timed)  # 6 words: the last at 0.45 s
    assert "".join(piece for piece, _ in arrivals) == ECHO
    first, last = arrivals[0][1], arrivals[-1][1]
    assert first >= 0.2
    assert last - first >= 0.15  # not held back until the end


def test_reasoning_block_cut_across_pieces_is_never_yielded(make_settings):
    pieces = streamed(OpenAIChat(make_settings(llm_model="think").llm))
    assert "".join(pieces) == "Olá! Tudo bem."
    assert not any("<" in piece or ">" in piece or "user" in piece for piece in pieces)


@pytest.mark.parametrize(("text", "answer"), [
    ("Oi <think>a < b</think>  tudo <b>bem</b>? <THINK>x</Think> Fim<", "Oi tudo <b>bem</b>? Fim<"),
    ("Resposta.<think>never closed </thin", "Resposta."),
])
def test_reasoning_filter_wherever_the_pieces_are_cut(text, answer):
    for size in range(1, len(text) + 1):
        reasoning = _ReasoningFilter()
        pieces = [reasoning.feed(text[i:i + size]) for i in range(0, len(text), size)] + [reasoning.end()]
        assert "".join(pieces) == answer, size


def test_end_call_comes_last_when_the_model_calls_it(make_settings, fake_llm):
    assert streamed(OpenAIChat(make_settings(llm_model="goodbye").llm), end_call_tool=True) == [*GOODBYE, ToolCall("end_call", {})]
    [tool] = fake_llm.requests[-1]["json"]["tools"]
    assert tool["type"] == "function" and tool["function"]["name"] == "end_call"


def test_only_the_tools_offered_are_called(make_settings, fake_llm):
    async def offering_another(chat):
        return [item async for item in chat.stream(SYSTEM, HELLO, [OTHER_TOOL])]
    assert run(OpenAIChat(make_settings(llm_model="goodbye").llm), offering_another) == GOODBYE


def test_no_tools_offered_no_end_call(make_settings, fake_llm):
    assert streamed(OpenAIChat(make_settings(llm_model="goodbye").llm)) == GOODBYE
    assert "tools" not in fake_llm.requests[-1]["json"]


def test_an_upstream_that_does_not_stream_gives_its_whole_answer(make_settings, fake_llm):
    assert streamed(OpenAIChat(make_settings(llm_model="nostream").llm), end_call_tool=True) == [
        "Obrigado pela ligação, tchau!", ToolCall("end_call", {})]
    assert fake_llm.requests[-1]["json"]["stream"] is True


def test_a_stream_without_content_yields_nothing(make_settings):
    assert streamed(OpenAIChat(make_settings(llm_model="empty").llm), end_call_tool=True) == []


def test_refused_tools_are_dropped_for_good(make_settings, fake_llm, caplog):
    async def twice(chat):
        return [[item async for item in chat.stream(SYSTEM, HELLO, [END_CALL_TOOL])] for _ in range(2)]

    before = len(fake_llm.requests)
    with caplog.at_level(logging.WARNING, logger="zapvoice.providers.llm"):
        first, second = run(OpenAIChat(make_settings(llm_model="notools").llm), twice)
    assert "".join(first) == "".join(second) == ECHO
    offered = ["tools" in entry["json"] for entry in fake_llm.requests[before:]]
    assert offered == [True, False, False]
    [warning] = caplog.records
    assert "does not support tools" in warning.getMessage()


@pytest.mark.parametrize("how", ["aclose", "cancel"])
def test_stopping_early_disconnects_from_the_upstream(make_settings, fake_llm, how):
    async def stop_after_the_first_piece(chat):
        pieces = chat.stream(SYSTEM, HELLO)
        if how == "aclose":
            assert await anext(pieces) == "**Você "
            await pieces.aclose()
        else:
            first = asyncio.Event()

            async def listen():
                async for _ in pieces:
                    first.set()
            task = asyncio.create_task(listen())
            await first.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert [response.is_closed for response in responses] == [True]
        entry = fake_llm.requests[-1]
        assert entry["json"]["model"] == "stall"
        # The client stays open: only closing the response ends the stream (a stall never ends by itself).
        return await asyncio.to_thread(entry["over"].wait, 30) and entry["disconnected"]

    chat = OpenAIChat(make_settings(llm_model="stall").llm)
    responses, send = [], chat.client.send

    async def send_and_keep(request, **options):
        responses.append(response := await send(request, **options))
        return response
    chat.client.send = send_and_keep
    assert run(chat, stop_after_the_first_piece)


@pytest.mark.parametrize(("model", "status", "says"), [
    ("error", 502, "HTTP 500: model 'x' not found"),
    ("garbage", 502, "not an OpenAI chat completion: '<html>"),
    ("garbled", 502, "not JSON: '<html>"),
    ("slow", 504, "did not answer within 0.3 s"),
    ("stall", 504, "did not answer within 0.3 s"),
])
def test_upstream_failures(make_settings, model, status, says):
    with pytest.raises(ProviderError) as caught:
        streamed(OpenAIChat(make_settings(llm_model=model, llm_timeout_s=0.3).llm))
    assert caught.value.status == status and says in caught.value.message


@pytest.mark.parametrize(("overrides", "says"), [
    ({"llm_timeout_s": 0.3}, "did not answer within 0.3 s"),
    ({"llm_first_token_timeout_s": 0.3}, "sent no token within 0.3 s"),
])
def test_a_stream_of_keep_alives_is_cut(make_settings, overrides, says):
    """An SSE comment every 50 ms for 5 s: each read is quick, the answer never comes."""
    with pytest.raises(ProviderError) as caught:
        streamed(OpenAIChat(make_settings(llm_model="trickle-100-50", **overrides).llm))
    assert caught.value.status == 504 and says in caught.value.message


def test_the_first_token_bound_ends_with_the_first_token(make_settings):
    """Words 50 ms apart for 0.3 s, longer than the first-token bound: a slow stream is not a stuck one."""
    pieces = streamed(OpenAIChat(make_settings(llm_model="pace-0-20", llm_first_token_timeout_s=0.2).llm))
    assert "".join(pieces) == ECHO


def test_a_streamed_event_over_the_size_limit_is_502(make_settings):
    with pytest.raises(ProviderError) as caught:
        streamed(OpenAIChat(make_settings(llm_model="gzip-4", llm_max_reply_bytes=65536).llm))
    assert caught.value.status == 502 and "more than 65536 bytes" in caught.value.message


def test_upstream_down_is_502(make_settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(ProviderError) as caught:
        streamed(OpenAIChat(make_settings(llm_url=f"http://127.0.0.1:{closed_port}/v1").llm))
    assert caught.value.status == 502 and "cannot reach the LLM" in caught.value.message


def test_contract_chat_streams_its_whole_reply_once(service):
    assert streamed(ContractChat(f"{service.url}/llm", TOKEN), end_call_tool=True) == ["Você disse: oi tudo bem"]
