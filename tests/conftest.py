"""Shared fixtures: models built on the spot, a fake LLM upstream, and the real service on a free port."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
from zapvoice.providers.service import create_app

from tests.model_builders.piper_voice import build_sine_voice
from tests.model_builders.whisper import build_scripted_whisper
from tests.support.clock import VirtualClock
from tests.support.fake_llm import build_fake_llm
from tests.support.servers import ServedHere, serve_config_in_thread, serve_in_thread
from tests.support.settings import build_settings
from zapvoice.composition import service_engines
from zapvoice.http_server import server_config
from zapvoice.settings import Settings

# The tests must not depend on the developer's environment or reach any model hub.
for _name in [n for n in os.environ if n.startswith("ZAPVOICE_")]:
    del os.environ[_name]
os.environ["HF_HUB_OFFLINE"] = "1"
# Nothing a test starts writes into the developer's data directory (records, a generated token).
os.environ["ZAPVOICE_DATA_DIR"] = tempfile.mkdtemp(prefix="zapvoice-data-")
atexit.register(shutil.rmtree, os.environ["ZAPVOICE_DATA_DIR"], ignore_errors=True)

TOKEN = "test-token-7f3a"
SCRIPTED_TEXT = "olá, tudo bem?"


@pytest.fixture(scope="session", autouse=True)
def outside_the_repository(tmp_path_factory):
    """Run every test (and the CLI it starts) in an empty directory: Settings reads `.env` from the
    working directory, and the developer's own .env at the repository root must not change a test."""
    before = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(before)


@pytest.fixture(autouse=True)
def own_fake_llm_log(request):
    """A test that inspects the session's fake LLM sees only its own requests, not an earlier test's."""
    if "fake_llm" in request.fixturenames:
        request.getfixturevalue("fake_llm").requests.clear()


@pytest.fixture()
def clock() -> VirtualClock:
    """The test's virtual clock: run its scenario with clock.run() (tests/support/clock.py)."""
    return VirtualClock()


@pytest.fixture()
def loop_llm() -> ServedHere:
    """A fake LLM of the test's own, to serve from its loop (loop_llm.serving()): on a virtual clock,
    the session's fake_llm, in a thread, would answer while call time jumped ahead."""
    return ServedHere(build_fake_llm())


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> dict[str, Path]:
    """A scripted Whisper (always transcribes SCRIPTED_TEXT, detects Portuguese) and two test voices."""
    root = tmp_path_factory.mktemp("models")
    return {
        "whisper": build_scripted_whisper(root / "whisper", text=SCRIPTED_TEXT, language="pt"),
        "pt_voice": build_sine_voice(root / "voices", name="pt_BR-test-medium", espeak_voice="pt-br"),
        "en_voice": build_sine_voice(root / "voices", name="en_US-test-medium", espeak_voice="en-us"),
    }


@pytest.fixture(scope="session")
def fake_llm():
    running = serve_in_thread(build_fake_llm(slow_s=3.0))
    running.requests = running.server.config.app.state.requests
    yield running
    running.stop()


@pytest.fixture(scope="session")
def make_settings(model_files, fake_llm, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("model-cache")

    def make(**overrides) -> Settings:
        values = dict(
            model_dir=model_dir, auto_download=False, token=TOKEN,
            whisper_model=str(model_files["whisper"]),
            voices=[str(model_files["pt_voice"]), str(model_files["en_voice"])],
            llm_url=f"{fake_llm.url}/v1", llm_model="echo", llm_timeout_s=1.0,
        )
        values.update(overrides)
        return build_settings(**values)

    return make


@pytest.fixture(scope="session")
def make_service(make_settings):
    """Start the real service (engines loaded through faster-whisper and Piper) with some settings changed."""
    started = []

    def make(**overrides):
        settings = make_settings(**overrides)
        app = create_app(settings, service_engines(settings))
        running = serve_config_in_thread(server_config(app, settings.service, host="127.0.0.1", port=0, log_level="warning"))
        running.settings = settings
        running.app = app  # the service itself: the server's config holds it wrapped
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def service(make_service):
    return make_service()


@pytest.fixture()
def client(service):
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
        yield http
