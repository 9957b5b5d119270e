"""agent.max_calls is one count per process: `zapvoice serve --gateway-port` (the service, its playground and
the 4143 gateway on the same engines, under a real uvicorn) takes no more calls over both transports than the
setting says, and each transport refuses the one over in its own protocol's way."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from zapvoice.agent.admission import CallSlots
from zapvoice.agent.gateway.commands import beside_service
from zapvoice.providers.service import create_app

from tests.conftest import TOKEN
from tests.support.gateway_caller import GatewayCaller
from tests.support.servers import serve_config_in_thread
from tests.test_cli import free_port
from zapvoice.composition import service_engines
from zapvoice.http_server import server_config


@pytest.fixture()
def one_call_service(make_settings, tmp_path):
    settings = make_settings(agent_max_calls=1, gateway_port=free_port(), agent_record_dir=tmp_path / "calls",
                             agent_idle_prompt_s=60.0)
    engines = service_engines(settings)
    app = create_app(settings, engines, beside_service(settings, engines))
    running = serve_config_in_thread(server_config(app, settings.service, host="127.0.0.1", port=0))
    running.gateway_url = f"ws://127.0.0.1:{settings.gateway.port}"
    yield running
    running.stop()


async def playground_start(ws) -> dict:
    """Start a playground call; the first JSON event (ready, or the refusal)."""
    await ws.send(json.dumps({"type": "start", "token": TOKEN}))
    while isinstance(message := await asyncio.wait_for(ws.recv(), 30), bytes):
        pass
    return json.loads(message)


def test_a_playground_call_takes_the_only_place_from_the_gateway(one_call_service):
    async def scenario():
        async with connect(f"{one_call_service.ws_url}/playground/ws") as browser:
            ready = await playground_start(browser)
            async with GatewayCaller(one_call_service.gateway_url) as phone:
                await phone.send({"event": "incoming_call", "callerId": "5511900000000", "sessionId": "second"})
                await asyncio.wait_for(phone.closed.wait(), 10)
            await browser.send(json.dumps({"type": "hangup"}))
            return ready, phone

    ready, phone = asyncio.run(scenario())
    assert ready["type"] == "ready"
    assert [event for _, event in phone.events] == [{"event": "hangup"}]  # declined unanswered, as when full


def test_a_gateway_call_takes_the_only_place_from_the_playground(one_call_service):
    async def scenario():
        async with GatewayCaller(one_call_service.gateway_url) as phone:
            await phone.call()
            async with connect(f"{one_call_service.ws_url}/playground/ws") as browser:
                refusal = await playground_start(browser)
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(browser.recv(), 10)
            await phone.hang_up()
            return refusal, closed.value.rcvd.code

    refusal, code = asyncio.run(scenario())
    assert refusal == {"type": "error", "error": "1 calls in progress (agent.max_calls)"} and code == 1008


def test_a_call_counts_while_it_is_held_and_no_longer():
    slots = CallSlots(2)
    with slots.held():
        assert not slots.full and slots.taken == 1
        with slots.held():
            assert slots.full
        assert not slots.full
    with pytest.raises(RuntimeError), slots.held():
        raise RuntimeError("the call failed")
    assert slots.taken == 0
    with pytest.raises(ValueError, match="max_calls must be 1 or more"):
        CallSlots(0)
