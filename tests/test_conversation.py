"""The conversation engine (agent/conversation.py) with instant fake engines on a virtual clock:
turn taking, streaming sentence by sentence, barge-in, speculative STT, pacing and every way a
call ends. Times are clock seconds."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from zapvoice.agent.conversation import INTERRUPTED
from zapvoice.providers.contracts import Engines
from zapvoice.providers.errors import UnknownVoice

from tests.support.call_rig import CallRig, HangUp, Say, UntilBotDone, Wait
from tests.support.clock import VirtualClock
from tests.support.fake_engines import FakeChat, FakeSTT, FakeTTS, ScriptedReply
from tests.support.settings import build_settings
from tests.support.speech import speak
from tests.support.turn_taking import Call, cough
from zapvoice.settings import Settings

STORY = ("Primeiro, abrimos às oito horas. Segundo, fechamos às seis da tarde. Terceiro, aos sábados "
         "abrimos só de manhã. Quarto, aos domingos não abrimos. Quinto, o telefone é sempre o mesmo. "
         "Sexto, obrigado pela paciência.")


@pytest.fixture(scope="module")
def utterance() -> np.ndarray:
    return speak("Bom dia, eu queria saber o horário de funcionamento.")


@pytest.fixture(scope="module")
def short_utterance() -> np.ndarray:
    return speak("Sim, por favor.")


def settings(tmp_path, **overrides) -> Settings:
    values = dict(agent_record_dir=tmp_path, agent_greeting="Olá! Como posso ajudar?", agent_idle_prompt_s=30.0)
    values.update(overrides)
    return build_settings(**values)


def rig(tmp_path, replies, texts=("quero saber o horário",), stt_delay=0.05, first_token_s=0.05, token_s=0.01,
        noise_dbfs=-60.0, **overrides):
    clock = VirtualClock()
    stt = FakeSTT(clock, list(texts), delay_s=stt_delay)
    llm = FakeChat(clock, [r if isinstance(r, ScriptedReply) else ScriptedReply(r) for r in replies],
                   first_token_s=first_token_s, token_s=token_s)
    tts = FakeTTS(clock)
    call = CallRig(clock, settings(tmp_path, **overrides), Engines(stt, llm, tts), noise_dbfs=noise_dbfs)
    return call, stt, llm, tts


def records(tmp_path) -> list[dict]:
    (path,) = tmp_path.rglob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_greeting_then_three_turns_then_remote_hangup(tmp_path, utterance):
    call, stt, llm, tts = rig(tmp_path, ["Abrimos às oito. Fechamos às seis.", "Sim, aos sábados.", "De nada!"],
                              texts=["qual o horário", "e no sábado", "obrigado"])
    script = [UntilBotDone(), Say(utterance), UntilBotDone(), Say(utterance), UntilBotDone(),
              Say(utterance), UntilBotDone(), HangUp()]
    reason = call.play(script)

    assert reason == "remote hangup"
    assert tts.texts[0] == ("Olá! Como posso ajudar?", None)
    history = call.conversation.history
    assert [m["role"] for m in history] == ["assistant", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert history[1:3] == [{"role": "user", "content": "qual o horário"},
                            {"role": "assistant", "content": "Abrimos às oito. Fechamos às seis."}]
    assert llm.requests[2] == history[:-1]  # the LLM saw the whole conversation so far
    assert len(call.line.bot_speech_segments()) == 4
    assert all(frame.size == 960 for _, frame in call.line.sent)
    assert call.line.max_ahead_frames() <= 2.01
    # Each reply started after the caller's speech ended, never over it.
    for (_, said_end), (bot_start, _) in zip(call.said, call.line.bot_speech_segments()[1:]):
        assert bot_start > said_end
    lines = records(tmp_path)
    assert [e["event"] for e in lines] == ["call_started", "turn", "turn", "turn", "turn", "call_ended"]
    turn = lines[2]
    assert turn["user"] == "qual o horário" and not turn["interrupted"]
    assert 0 < turn["stt_ms"] <= turn["first_token_ms"] <= turn["first_audio_ms"]
    assert lines[-1]["reason"] == "remote hangup"


def test_turns_over_a_noisy_line_are_answered_once_each(tmp_path, utterance):
    """Speech about 20 dB over white line noise: two turns, two replies, no turn made of noise."""
    call, stt, _, _ = rig(tmp_path, ["Certo."], noise_dbfs=-38.0)
    script = [UntilBotDone(), Say(utterance), UntilBotDone(), Wait(3.0), Say(utterance), UntilBotDone(), HangUp()]
    call.play(script)
    turns = [e for e in records(tmp_path) if e["event"] == "turn"]
    assert len(turns) == 3 and [t["user"] for t in turns[1:]] == ["quero saber o horário"] * 2
    assert stt.calls[-1] > 2.5  # the whole utterance reached STT, not a fragment


def test_the_first_sentence_plays_while_the_rest_is_generated(tmp_path, utterance):
    call, _, llm, tts = rig(tmp_path, [STORY], token_s=0.1)
    call.play([UntilBotDone(), Say(utterance), Wait(4.0), HangUp()])
    turn = records(tmp_path)[2]
    generation_s = 0.05 + 0.1 * (len(STORY.split()) - 1)
    assert turn["first_audio_ms"] - turn["first_token_ms"] < 1000 * generation_s / 3
    assert [text for text, _ in tts.texts[1:3]] == ["Primeiro, abrimos às oito horas.", "Segundo, fechamos às seis da tarde."]


def test_barge_in_stops_the_bot_and_keeps_only_what_was_heard(tmp_path, utterance, short_utterance):
    call, _, llm, _ = rig(tmp_path, [STORY, "Claro."], texts=["horário", "só o sábado"], token_s=0.15)
    script = [UntilBotDone(), Say(utterance), Wait(3.5), Say(short_utterance), UntilBotDone(), HangUp()]
    call.play(script)

    onset = call.said[1][0] + first_sound_s(short_utterance)
    story_segment = next(seg for seg in call.line.bot_speech_segments() if seg[0] < onset < seg[1] + 0.3)
    assert story_segment[1] - onset <= 0.4, "the bot went on talking over the caller"
    assert llm.closed_early == 1, "the LLM stream was not cancelled"
    interrupted = call.conversation.history[2]
    assert interrupted["role"] == "assistant" and interrupted["content"].endswith(INTERRUPTED)
    heard = interrupted["content"].removesuffix(INTERRUPTED)
    assert heard and STORY.startswith(heard.rstrip(".")) and len(heard) < len(STORY) / 2
    assert call.conversation.history[3] == {"role": "user", "content": "só o sábado"}
    assert records(tmp_path)[2]["interrupted"] is True


def test_a_cough_costs_the_caller_only_its_own_length_of_bot_audio(tmp_path, utterance):
    call, stt, llm, tts = rig(tmp_path, [STORY])
    call.play([UntilBotDone(), Say(utterance), Wait(3.0), Say(cough(150)), Wait(12.0), HangUp()], max_s=90)
    assert llm.closed_early == 0
    assert call.conversation.history[-1] == {"role": "assistant", "content": STORY}
    reply = Call(call, stt)
    assert reply.stalls(1) == 1  # the cough paused it once (the onset)...
    assert reply.missing_s(1) < 0.25  # ...and it resumed when the cough was over, not after vad.end_silence_ms
    # Resumed where it paused: every sample of every sentence was sent, none skipped.
    sent = np.concatenate([frame for at, frame in call.line.sent if at > call.said[0][1]])
    expected = sum(round(len(text) * tts.s_per_char * 16000) for text, _ in tts.texts[1:])
    assert abs(np.flatnonzero(sent)[-1] + 1 - expected) < 200  # the tone crosses zero every 200 samples


def test_a_sound_resumed_over_that_turns_out_a_turn_still_interrupts_the_reply(tmp_path, utterance):
    """turns.barge_in_min_ms above vad.min_speech_ms: a 320 ms sound is too short to barge in, so output resumed,
    but long enough to be a turn. Its answer must replace the reply, not play beside it."""
    call, _, _, _ = rig(tmp_path, [STORY, "Segunda resposta."], texts=["quero saber o horário", "espera"],
                            barge_in_min_ms=400)
    call.play([UntilBotDone(), Say(utterance), Wait(3.0), Say(cough(320)), Wait(12.0), HangUp()], max_s=90)
    roles = [message["role"] for message in call.conversation.history]
    assert roles == ["assistant", "user", "assistant", "user", "assistant"], call.conversation.history
    assert call.conversation.history[2]["content"] != STORY  # cut where the caller was heard


def test_without_early_resume_a_cough_pauses_the_bot_until_the_vad_drops_it(tmp_path, utterance):
    call, stt, llm, _ = rig(tmp_path, [STORY], resume_quiet_ms=5000)
    call.play([UntilBotDone(), Say(utterance), Wait(3.0), Say(cough(150)), Wait(12.0), HangUp()], max_s=90)
    assert llm.closed_early == 0
    assert Call(call, stt).missing_s(1) > 0.5


def test_speculative_stt_is_used_at_the_end_of_the_turn(tmp_path, utterance):
    call, stt, _, _ = rig(tmp_path, ["Certo."], stt_delay=0.3)
    call.play([UntilBotDone(), Say(utterance), UntilBotDone(), HangUp()])
    turn = records(tmp_path)[2]
    assert len(stt.calls) == 1 and turn["speculative_stt"] is True
    # STT took 300 ms but started at the pause: the result was there when the turn ended.
    assert turn["stt_ms"] < 600 + 100


def test_speculative_stt_is_thrown_away_when_the_caller_goes_on(tmp_path, utterance, short_utterance):
    call, stt, llm, _ = rig(tmp_path, ["Certo."], texts=["primeira parte", "a frase inteira"])
    pause = np.zeros(int(0.4 * 16000), np.float32)
    call.play([UntilBotDone(), Say(np.concatenate([short_utterance, pause, utterance])),
                          UntilBotDone(), HangUp()])
    # espeak pauses between words too: each pause started a transcription; only the last stood.
    assert len(stt.calls) >= 2 and stt.calls == sorted(stt.calls) and stt.calls[-1] > 3.0
    assert llm.requests[0][-1] == {"role": "user", "content": "a frase inteira"}


def test_without_speculative_stt_the_turn_is_transcribed_once_at_its_end(tmp_path, utterance):
    call, stt, _, _ = rig(tmp_path, ["Certo."], agent_speculative_stt=False)
    call.play([UntilBotDone(), Say(utterance), UntilBotDone(), HangUp()])
    assert len(stt.calls) == 1 and records(tmp_path)[2]["speculative_stt"] is False


@pytest.mark.parametrize("reply", [ScriptedReply("Obrigado pela ligação, até mais!", end_call=True),
                                   ScriptedReply("Foi um prazer. Tchau!")], ids=["end_call tool", "goodbye phrase"])
def test_the_bot_hangs_up_after_its_goodbye_has_been_heard(tmp_path, utterance, reply):
    call, _, _, _ = rig(tmp_path, [reply], agent_goodbye_phrases=["tchau"])
    reason = call.play([UntilBotDone(), Say(utterance)])
    assert reason in {"the bot ended the call", "the bot said goodbye"}
    last_played = call.line.played()[-1][1]
    assert call.line.hung_up_at is not None and call.line.hung_up_at >= last_played - 0.01


def test_an_idle_caller_is_prompted_once_then_hung_up_on(tmp_path):
    call, _, _, tts = rig(tmp_path, ["x"], agent_idle_prompt_s=2.0, agent_idle_hangup_s=2.0)
    reason = call.play([])
    assert reason == "the caller stayed silent"
    spoken = [text for text, _ in tts.texts]
    assert spoken == ["Olá! Como posso ajudar?", "Você ainda está aí?", "Obrigado pela ligação. Tchau!"]
    greeting_end, prompt, farewell = [seg for seg in call.line.bot_speech_segments()]
    assert prompt[0] - greeting_end[1] == pytest.approx(2.0, abs=0.1)
    assert call.line.hung_up_at >= farewell[1] - 0.01


def test_the_call_length_is_limited(tmp_path, utterance):
    call, _, _, tts = rig(tmp_path, [STORY], agent_max_call_s=6.0)
    reason = call.play([UntilBotDone(), Say(utterance)])
    assert reason == "the call reached agent.max_call_s"
    farewell = "Obrigado pela ligação. Tchau!"
    assert tts.texts[-1][0] == farewell
    # The farewell starts at the limit and the hangup waits until it has been heard.
    farewell_s = len(farewell) * 0.03  # FakeTTS
    assert call.line.hung_up_at == pytest.approx(call.line.played()[-1][1])
    assert 6.0 + farewell_s <= call.line.hung_up_at <= 6.0 + farewell_s + 0.3


def test_a_call_limit_reached_while_the_caller_talks_ends_with_the_farewell(tmp_path, utterance):
    """The caller's turn ends after the farewell began: it is not answered (it was, over the farewell)."""
    farewell = "Nosso tempo acabou. Obrigado pela ligação, foi um prazer falar com você. Até a próxima, tchau!"
    call, _, _, tts = rig(tmp_path, ["Não devia ser dito."], agent_max_call_s=4.0, agent_farewell=farewell)
    reason = call.play([UntilBotDone(), Say(utterance), Wait(2.0)])
    assert reason == "the call reached agent.max_call_s"
    assert [text for text, _ in tts.texts] == ["Olá! Como posso ajudar?", farewell]


def test_a_failed_transcription_is_answered_and_the_call_goes_on(tmp_path, utterance):
    call, stt, _, tts = rig(tmp_path, ["Agora sim."], texts=["de novo"])
    stt.failures = 1  # the first turn's transcription (speculative, at its closing pause)
    script = [UntilBotDone(), Say(utterance), UntilBotDone(), Wait(1), Say(utterance), UntilBotDone(), HangUp()]
    assert call.play(script) == "remote hangup"
    spoken = [text for text, _ in tts.texts]
    assert spoken == ["Olá! Como posso ajudar?", "Desculpe, não consegui responder agora. Pode repetir?",
                      "Agora sim."]
    assert stt.failures == 0 and len(stt.calls) == 2


def test_the_reply_voice_follows_the_callers_language(tmp_path, utterance):
    call, stt, _, tts = rig(tmp_path, ["Sure."])
    stt.language = "en"
    call.play([UntilBotDone(), Say(utterance), UntilBotDone(), HangUp()])
    assert tts.texts[-1] == ("Sure.", "en")


def test_a_language_without_a_voice_is_answered_in_the_default_voice(tmp_path, utterance):
    call, stt, _, tts = rig(tmp_path, ["Bien sûr. Merci."])
    stt.language = "fr"
    speak_in_default = tts.speak

    async def only_the_default(text, voice=None, speed=1.0):
        if voice is not None:
            raise UnknownVoice(f"unknown voice {voice!r}")
        return await speak_in_default(text, voice, speed)
    tts.speak = only_the_default
    call.play([UntilBotDone(), Say(utterance), UntilBotDone(), HangUp()])
    assert call.conversation.history[-1] == {"role": "assistant", "content": "Bien sûr. Merci."}
    assert tts.texts[-2:] == [("Bien sûr.", None), ("Merci.", None)]


def test_a_turn_cut_at_the_length_limit_is_timed_from_the_cut(tmp_path, utterance):
    """The caller was still talking at vad_max_utterance_s: the turn's speech ended at the cut,
    not vad_end_silence_ms (2 s here) before it."""
    call, _, _, _ = rig(tmp_path, ["Certo."], vad_max_utterance_s=1.0, vad_end_silence_ms=2000, barge_in=False)
    call.play([UntilBotDone(), Say(utterance), UntilBotDone(), HangUp()])
    turn = records(tmp_path)[2]
    assert turn["event"] == "turn" and turn["user"] == "quero saber o horário"
    assert 0 < turn["stt_ms"] < 1000


def test_a_remote_hangup_mid_reply_leaves_no_task_behind(tmp_path, utterance):
    call, _, llm, _ = rig(tmp_path, [STORY], token_s=0.2)

    async def run():
        before = asyncio.all_tasks()
        reason = await call.run([UntilBotDone(), Say(utterance), Wait(2.5), HangUp()])
        return reason, asyncio.all_tasks() - before
    reason, left = call.clock.run(run())
    assert reason == "remote hangup" and not left
    assert records(tmp_path)[-1]["event"] == "call_ended"


def first_sound_s(audio: np.ndarray) -> float:
    frames = audio[: audio.size // 320 * 320].reshape(-1, 320)
    loud = np.flatnonzero(np.sqrt(np.mean(frames ** 2, axis=1)) > 10 ** (-40 / 20))
    return loud[0] * 0.02
