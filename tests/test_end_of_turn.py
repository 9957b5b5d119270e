"""The end-of-turn policy (agent/end_of_turn.py) on a virtual clock with a scripted model: a
complete verdict ends the turn at the pause, an incomplete one leaves it to the next pause or
the long silence, a late verdict or a busy model never cuts the caller off. Times are clock
seconds; the audio is fed in 60 ms chunks in (clock) real time. Then a whole call in smart-turn
mode, and where the model's file comes from."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from zapvoice.agent.end_of_turn import EndOfTurn
from zapvoice.agent.vad import PauseStarted, SpeechResumed, SpeechStarted, TurnEnded
from zapvoice.providers.contracts import Engines
from zapvoice.providers.model_store import ModelError, ModelStore

from tests.support.call_rig import CallRig, HangUp, Say, UntilBotDone
from tests.support.clock import VirtualClock
from tests.support.end_of_turn import run_end_of_turn
from tests.support.fake_engines import FakeChat, FakeSTT, FakeTTS, ScriptedReply, ScriptedTurnModel
from tests.support.fake_hub import build_fake_hub
from tests.support.servers import serve_in_thread
from tests.support.settings import build_settings
from tests.test_models_pull import pull
from tests.test_vad import silence, syllables
from zapvoice.composition import load_turn_model
from zapvoice.settings import TurnSettings

CHUNK = 960
SPEECH_S = 1.5  # each piece of speech below; the VAD declares the pause 160 ms after it


def run_policy(audio: np.ndarray, probabilities, delay_s=0.05, **overrides):
    """(clock time, event) of everything the policy reported, and the model."""
    settings = build_settings(**{"end_of_turn": "smart-turn", **overrides})
    clock = VirtualClock()
    model = ScriptedTurnModel(clock, probabilities, delay_s)
    return run_end_of_turn(clock, audio, settings, model, CHUNK), model


def kinds(seen) -> list[type]:
    return [type(event) for _, event in seen]


def ends(seen) -> list[tuple[float, TurnEnded]]:
    return [(at, event) for at, event in seen if isinstance(event, TurnEnded)]


def test_a_pause_the_model_calls_complete_ends_the_turn_at_once():
    seen, model = run_policy(np.concatenate([syllables(SPEECH_S), silence(3.0)]), [0.9])
    assert kinds(seen) == [SpeechStarted, PauseStarted, TurnEnded]
    ((at, ended),) = ends(seen)
    pause = next(event for _, event in seen if isinstance(event, PauseStarted))
    assert at == pytest.approx(pause.at_s + 0.05, abs=0.07)  # the pause, then the model's 50 ms
    assert ended.audio is pause.audio  # what speculative STT transcribed stands
    assert ended.speech_end_s == pytest.approx(SPEECH_S, abs=0.05)
    assert model.calls == [pytest.approx(pause.audio.size / 16000)]


def test_an_incomplete_verdict_holds_the_turn_until_the_long_silence():
    seen, model = run_policy(np.concatenate([syllables(SPEECH_S), silence(3.0)]), [0.2],
                             smart_turn_max_silence_ms=1800)
    ((at, ended),) = ends(seen)
    assert at == pytest.approx(SPEECH_S + 1.8, abs=0.07)  # the energy end, held to 1.8 s
    assert len(model.calls) == 1  # once per pause, not again during the silence


def test_the_caller_who_goes_on_after_an_incomplete_pause_ends_at_the_next_complete_one():
    audio = np.concatenate([syllables(SPEECH_S), silence(0.7), syllables(SPEECH_S, seed=1), silence(3.0)])
    seen, model = run_policy(audio, [0.1, 0.95])
    assert kinds(seen) == [SpeechStarted, PauseStarted, SpeechResumed, PauseStarted, TurnEnded]
    ((at, ended),) = ends(seen)
    assert ended.speech_end_s == pytest.approx(2 * SPEECH_S + 0.7, abs=0.05)
    assert at < ended.speech_end_s + 0.3
    assert len(model.calls) == 2 and model.calls[1] > model.calls[0] + SPEECH_S  # the whole utterance so far


def test_a_verdict_that_comes_after_the_caller_went_on_is_dropped():
    # The model takes 400 ms; the caller resumes 250 ms into the silence (before its answer).
    audio = np.concatenate([syllables(SPEECH_S), silence(0.25), syllables(SPEECH_S, seed=1), silence(3.0)])
    seen, model = run_policy(audio, [0.99], delay_s=0.4)
    ((at, ended),) = ends(seen)
    assert ended.speech_end_s == pytest.approx(2 * SPEECH_S + 0.25, abs=0.05)  # not cut at the first pause
    assert SpeechResumed in kinds(seen)
    assert model.answered == 1  # the first question was cancelled


@pytest.mark.parametrize("failure", [None, RuntimeError("onnxruntime: invalid input")], ids=["busy", "failed"])
def test_a_pause_the_model_cannot_judge_ends_on_the_energy_silence(failure):
    seen, model = run_policy(np.concatenate([syllables(SPEECH_S), silence(3.0)]), [failure],
                             vad_end_silence_ms=700)
    ((at, _),) = ends(seen)
    assert at == pytest.approx(SPEECH_S + 0.7, abs=0.07)  # vad.end_silence_ms, not the long silence
    assert len(model.calls) == 1 and model.answered == 0


def test_energy_mode_never_asks_and_smart_mode_needs_a_model():
    settings = build_settings()
    policy = EndOfTurn(settings.turns, settings.vad, None, asyncio.ensure_future, lambda e: None)
    events = [e for start in range(0, 48000, CHUNK)
              for e in policy.process(np.concatenate([syllables(SPEECH_S), silence(1.5)])[start:start + CHUNK])]
    assert [type(e) for e in events] == [SpeechStarted, PauseStarted, TurnEnded]
    assert events[-1].at_s == pytest.approx(SPEECH_S + 0.6, abs=0.07)
    smart = build_settings(end_of_turn="smart-turn")
    with pytest.raises(ValueError, match="no turn model"):
        EndOfTurn(smart.turns, smart.vad, None, asyncio.ensure_future, lambda e: None)


def test_in_smart_turn_mode_the_call_answers_right_after_the_pause_the_model_calls_complete(tmp_path):
    """A caller who pauses 700 ms mid-sentence keeps the floor (the model: incomplete) and is answered
    right after the pause the model calls complete, sooner than the 600 ms of silence energy waits."""
    clock = VirtualClock()
    stt = FakeSTT(clock, ["quero saber o horário"])
    llm = FakeChat(clock, [ScriptedReply("Abrimos às oito.")])
    model = ScriptedTurnModel(clock, [0.1, 0.95])
    settings = build_settings(end_of_turn="smart-turn", agent_record_dir=tmp_path, agent_idle_prompt_s=30.0)
    call = CallRig(clock, settings, Engines(stt, llm, FakeTTS(clock), model))
    halting = np.concatenate([syllables(SPEECH_S), silence(0.7), syllables(SPEECH_S, seed=1)])
    call.play([UntilBotDone(), Say(halting), UntilBotDone(), HangUp()])

    assert len(model.calls) == 2
    assert [m["role"] for m in call.conversation.history] == ["assistant", "user", "assistant"]
    assert stt.calls[-1] > 2 * SPEECH_S + 0.7  # the whole sentence, pause included, in one turn
    (_, said_end), (bot_start, _) = call.said[-1], call.line.bot_speech_segments()[-1]
    assert 0 < bot_start - said_end < 0.45


def test_the_model_file_comes_from_models_txt_or_a_local_path(tmp_path):
    """models.txt names the model and its Hugging Face file; a missing one says what to run."""
    store = ModelStore(tmp_path / "models")
    entry = store.entry("turn", TurnSettings().smart_turn_model)
    assert (entry.repo, entry.file) == ("pipecat-ai/smart-turn-v3", "smart-turn-v3.2-cpu.onnx")
    with pytest.raises(ModelError, match=r"run `zapvoice models pull smart-turn-v3.2 --model-dir"):
        store.turn_model_file("smart-turn-v3.2", download=False)
    with pytest.raises(ModelError, match="end-of-turn model /nowhere/turn.onnx does not exist"):
        store.turn_model_file("/nowhere/turn.onnx", download=False)
    local = tmp_path / "mine.onnx"
    local.write_bytes(b"x")
    assert store.turn_model_file(str(local), download=False) == local


def test_pull_fetches_only_the_model_file(tmp_path):
    """`zapvoice models pull smart-turn-v3.2` takes the one .onnx from the repository (no .onnx.json as for a
    voice), where the store then finds it."""
    store = ModelStore(tmp_path / "models")
    entry = store.entry("turn", TurnSettings().smart_turn_model)
    served = {entry.file: b"\x08onnx" * 100, "README.md": b"# smart turn\n"}
    hub = serve_in_thread(build_fake_hub({entry.repo: served}))
    try:
        result = pull(hub, tmp_path / "models", "smart-turn-v3.2")  # the CLI, as a user runs it
    finally:
        hub.stop()
    assert result.returncode == 0, result.stderr
    fetched = store.turn_model_file("smart-turn-v3.2", download=False)
    assert fetched == tmp_path / "models" / "turn" / "smart-turn-v3.2" / "smart-turn-v3.2-cpu.onnx"
    assert fetched.read_bytes() == served[entry.file] and str(fetched) in result.stdout
    assert [path.name for path in fetched.parent.iterdir() if path.is_file()] == [fetched.name]


def test_a_broken_model_file_says_what_to_run(tmp_path):
    broken = tmp_path / "turn.onnx"
    broken.write_bytes(b"not an onnx model")
    settings = build_settings(end_of_turn="smart-turn", smart_turn_model=str(broken))
    with pytest.raises(ModelError, match=r"cannot load the end-of-turn model .*turn\.onnx.*zapvoice models pull"):
        load_turn_model(settings)
