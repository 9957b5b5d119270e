"""The composition root: only zapvoice.composition loads model libraries; the conversation, the
transports and the engine interfaces import without them (a test or a transport stays light)."""

import logging
import subprocess
import sys

MODEL_LIBRARIES = ("faster_whisper", "ctranslate2", "piper", "onnxruntime")


def loaded_model_libraries(*modules: str) -> list[str]:
    probe = (f"import sys; import {', '.join(modules)}; "
             f"print(' '.join(name for name in {MODEL_LIBRARIES!r} if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_conversation_and_the_transports_load_no_model_library():
    assert loaded_model_libraries("zapvoice.agent.conversation", "zapvoice.agent.gateway.call",
                                  "zapvoice.agent.gateway.server", "zapvoice.agent.zuckzapgo.server",
                                  "zapvoice.providers.contract_clients") == []


def test_the_composition_root_loads_them():
    """And the probe sees them when they are loaded, so the test above can fail."""
    assert loaded_model_libraries("zapvoice.composition") == list(MODEL_LIBRARIES)


def test_engines_that_would_refuse_admitted_calls_are_warned_about(caplog):
    """At the defaults every admitted call can wait for STT and TTS; more calls than that warn, per engine
    that runs in process (a provider over HTTP keeps its own queue)."""
    from tests.support.settings import build_settings
    from zapvoice.composition import _warn_short_queues

    with caplog.at_level(logging.WARNING, logger="zapvoice.composition"):
        _warn_short_queues(build_settings())
        assert caplog.messages == []
        _warn_short_queues(build_settings(agent_max_calls=40, stt_url="http://providers:8000/stt"))
    assert len(caplog.messages) == 1
    assert caplog.messages[0].startswith("tts.concurrency + tts.queue (21) is below agent.max_calls (40)")
