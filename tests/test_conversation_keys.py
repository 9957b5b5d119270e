"""Phone keys in the conversation engine (Conversation.pressed, fed by the 4143 gateway's DTMF), with
the instant fake engines on a virtual clock. Times are clock seconds."""

from __future__ import annotations

import numpy as np
import pytest
from zapvoice.agent.conversation import INTERRUPTED, KEYS_PRESSED

from tests.support.call_rig import HangUp, Press, Say, UntilBotDone, Wait
from tests.support.speech import speak
from tests.test_conversation import STORY, records, rig


@pytest.fixture(scope="module")
def utterance() -> np.ndarray:
    return speak("Bom dia, eu queria saber o horário de funcionamento.")


def test_a_key_interrupts_the_bot_and_is_answered_as_a_turn(tmp_path, utterance):
    call, _, llm, _ = rig(tmp_path, [STORY, "Você escolheu a opção um."], token_s=0.15)
    script = [UntilBotDone(), Say(utterance), Wait(3.0), Press("1"), UntilBotDone(), HangUp()]
    reason = call.play(script)

    assert reason == "remote hangup"
    assert llm.requests[-1][-1] == {"role": "user", "content": KEYS_PRESSED.format(digits="1")}
    assert llm.requests[-1][-2]["content"].endswith(INTERRUPTED)  # the story was cut by the key
    assert llm.closed_early == 1
    turns = [e for e in records(tmp_path) if e["event"] == "turn"]
    assert [(t["user"], t["interrupted"]) for t in turns[1:]] == [
        ("quero saber o horário", True), (KEYS_PRESSED.format(digits="1"), False)]
    assert turns[2]["assistant"] == "Você escolheu a opção um." and turns[2]["first_audio_ms"] < 1000


def test_keys_pressed_while_the_caller_talks_join_what_they_say(tmp_path, utterance):
    call, stt, llm, _ = rig(tmp_path, ["Certo."])
    script = [UntilBotDone(), Say(utterance[:16000]), Press("#"), Say(utterance[16000:]), UntilBotDone(), HangUp()]
    call.play(script)

    assert llm.requests[-1][-1] == {"role": "user",
                                    "content": f"{KEYS_PRESSED.format(digits='#')} quero saber o horário"}
    assert len(call.line.bot_speech_segments()) == 2  # the greeting and one answer, not one per key
