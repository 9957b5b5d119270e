"""Prometheus /metrics, scraped and parsed with prometheus-client's own parser, during a real call.

The registry is the process's, shared by every service and call of the test session: tests compare
values before and after what they do, never absolute counts.
"""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from zapvoice.agent.zuckzapgo.webhook import create_agent_app
from zapvoice.providers.errors import ProviderError
from zapvoice.providers.workers import BoundedWorker

from tests.conftest import TOKEN
from tests.support.servers import serve_in_thread
from tests.support.speech import speak
from tests.test_gateway import caller, engines, gateway, gateway_settings, until, utterance  # noqa: F401 - fixtures
from zapvoice.audio import PIPELINE_RATE, wav_bytes

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def scrape(url: str, headers: dict | None = None) -> dict[tuple[str, frozenset], float]:
    answer = httpx.get(f"{url}/metrics", headers=AUTH if headers is None else headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_audio_seconds_characters_and_cache_hits(service, client):
    before = scrape(service.url)
    text = "Uma frase para contar nas métricas."
    for _ in range(2):
        assert client.post("/tts", json={"text": text}).status_code == 200
    speech = speak("Olá, tudo bem?")
    assert client.post("/stt", content=wav_bytes(speech, PIPELINE_RATE), headers={"Content-Type": "audio/wav"}
                       ).status_code == 200
    assert client.post("/tts", json={"text": ""}).status_code == 422
    assert client.get("/v1/models").status_code == 200
    after = scrape(service.url)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("zapvoice_http_requests_total", route="/tts", method="POST", status="200") == 2
    assert grew("zapvoice_http_requests_total", route="/tts", method="POST", status="422") == 1
    assert grew("zapvoice_http_requests_total", route="/v1/models", method="GET", status="200") == 1
    assert grew("zapvoice_http_request_duration_seconds_count", route="/stt", method="POST", status="200") == 1
    assert grew("zapvoice_tts_characters_total", route="/tts") == 2 * len(text)
    assert grew("zapvoice_tts_cache_lookups_total", result="hit") == 1
    assert grew("zapvoice_tts_cache_lookups_total", result="miss") == 1
    assert grew("zapvoice_stt_audio_seconds_total", route="/stt") == pytest.approx(speech.size / PIPELINE_RATE, abs=0.01)
    assert grew("zapvoice_stt_processing_seconds_count", route="/stt") == 1
    # The scrape before this one was counted too, under its route; unknown paths stay one label.
    assert grew("zapvoice_http_requests_total", route="/metrics", method="GET", status="200") == 1
    client.get("/no/such/path/42")
    assert value(scrape(service.url), "zapvoice_http_requests_total", route="unmatched", method="GET", status="404") >= 1


def test_token_public_or_off(service, make_service):
    assert httpx.get(f"{service.url}/metrics").status_code == 401  # the default: the service's bearer token
    public = make_service(metrics="public")
    assert ("zapvoice_active_calls", frozenset()) not in scrape(public.url, headers={})
    off = make_service(metrics="off")
    assert httpx.get(f"{off.url}/metrics", headers=AUTH).status_code == 404


def test_a_full_queue_counts_its_503s_and_the_depth_is_a_gauge(service):
    worker = BoundedWorker("metrics-test", concurrency=1, queue=0)
    release, running = threading.Event(), threading.Event()

    async def scenario():
        job = asyncio.ensure_future(worker.run(lambda: (running.set(), release.wait(10))))
        await asyncio.to_thread(running.wait, 10)
        during = scrape(service.url)
        with pytest.raises(ProviderError) as refused:
            worker.refuse_if_full()
        release.set()
        await job
        return during, refused.value.status

    before = scrape(service.url)
    during, status = asyncio.run(scenario())
    after = scrape(service.url)
    worker.shutdown()
    assert status == 503
    assert value(during, "zapvoice_engine_jobs_in_flight", engine="metrics-test") == 1
    assert value(after, "zapvoice_engine_jobs_in_flight", engine="metrics-test") == 0
    assert (value(after, "zapvoice_engine_busy_rejections_total", engine="metrics-test")
            - value(before, "zapvoice_engine_busy_rejections_total", engine="metrics-test")) == 1


def test_scraped_during_a_call_turn_timings_barge_ins_and_call_ends(service, gateway_settings, engines, clock,  # noqa: F811
                                                                    loop_llm, utterance):  # noqa: F811
    settings = gateway_settings(llm_model="story")  # a long reply, to talk over
    labels = {"transport": "gateway"}

    async def scenario():
        before = scrape(service.url)  # blocking on purpose: call time stands still while the loop waits for it
        async with gateway(settings, engines, clock, loop_llm) as server, caller(server, clock) as phone:
            await phone.call()
            await phone.reply_after(0.0)
            await phone.talk_over_the_reply(utterance)
            await clock.sleep(1.0)
            during = scrape(service.url)
            await phone.hang_up()
            await until(lambda: not server.calls)
        return before, during, scrape(service.url)

    before, during, after = clock.run(scenario())

    def grew(samples, name, **labels):
        return value(samples, name, **labels) - value(before, name, **labels)

    assert grew(during, "zapvoice_active_calls", **labels) == 1
    assert grew(after, "zapvoice_active_calls", **labels) == 0
    assert grew(during, "zapvoice_barge_ins_total", **labels) == 1
    for stage in ("transcript", "first_token", "first_audio"):  # the first turn, finished when it was cut short
        assert grew(during, "zapvoice_turn_seconds_count", stage=stage) >= 1
        assert grew(during, "zapvoice_turn_seconds_sum", stage=stage) > 0
    assert grew(during, "zapvoice_turn_seconds_bucket", stage="first_audio", le="+Inf") >= 1
    assert grew(during, "zapvoice_call_ends_total", reason="the caller hung up", **labels) == 0
    assert grew(after, "zapvoice_call_ends_total", reason="the caller hung up", **labels) == 1


class _IdleAgent:
    calls: dict = {}
    reachable = True

    def poll_soon(self) -> None:
        pass


@pytest.mark.parametrize(("mode", "headers", "status"), [("token", {}, 401), ("token", AUTH, 200),
                                                          ("public", {}, 200), ("off", AUTH, 404)])
def test_the_agents_port_serves_metrics_as_the_service_does(mode, headers, status):
    app = serve_in_thread(create_agent_app(_IdleAgent(), None, mode, TOKEN))
    try:
        answer = httpx.get(f"{app.url}/metrics", headers=headers, timeout=10)
    finally:
        app.stop()
    assert answer.status_code == status
    if status == 200:
        names = {family.name for family in text_string_to_metric_families(answer.text)}
        assert {"zapvoice_active_calls", "zapvoice_turn_seconds", "zapvoice_call_ends"} <= names
    else:
        assert "error" in answer.json()


def test_the_gateways_port_serves_metrics_during_a_call(gateway_settings, engines, clock, loop_llm,  # noqa: F811
                                                       utterance):  # noqa: F811
    settings = gateway_settings(metrics="token")

    async def scenario():
        async with gateway(settings, engines, clock, loop_llm) as server, caller(server, clock) as phone, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
            await phone.call()
            await phone.reply_after(0.0)
            refused = await http.get("/metrics")
            during = await http.get("/metrics", headers=AUTH)
            await phone.hang_up()
            return refused, during

    refused, during = clock.run(scenario())
    assert refused.status_code == 401
    assert during.status_code == 200 and during.headers["content-type"].startswith("text/plain; version=")
    samples = {(sample.name, frozenset(sample.labels.items())): sample.value
               for family in text_string_to_metric_families(during.text) for sample in family.samples}
    assert value(samples, "zapvoice_active_calls", transport="gateway") >= 1
