"""Backchannels over the bot (agent/backchannel.py, turns.backchannels): "tá bom" while the bot talks keeps
its reply, other words cut it as before. The conversation runs with instant fake engines and a scripted
STT on a virtual clock (tests/test_conversation.py's rig); times are clock seconds."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from zapvoice.agent.backchannel import Backchannels, normalise, repeats_the_bot
from zapvoice.agent.conversation import INTERRUPTED, KEYS_PRESSED

from tests.support.call_rig import HangUp, Press, Say, UntilBotDone, Wait
from tests.support.settings import build_settings
from tests.support.speech import speak
from tests.support.turn_taking import Call, cough, first_sound_s
from tests.test_conversation import STORY, records, rig
from zapvoice.audio import PIPELINE_RATE

QUESTION = "quero saber o horário"


@pytest.fixture(scope="module")
def utterance() -> np.ndarray:
    return speak("Bom dia, eu queria saber o horário de funcionamento.")


@pytest.fixture(scope="module")
def ack() -> np.ndarray:
    """About 0.6 s of speech: past turns.barge_in_min_ms, short of turns.backchannel_max_ms."""
    return speak("tá bom")


def story_rig(tmp_path, texts: list[str], **overrides):
    """The STT answers QUESTION, then `texts`; the LLM the STORY, then "Claro."; `cut_at`: when a reply was cut."""
    call, stt, llm, tts = rig(tmp_path, [STORY, "Claro."], texts=[QUESTION, *texts], **overrides)
    cut_at: list[float] = []
    call.conversation.record.listeners.append(
        lambda line: cut_at.append(call.clock.now()) if line["event"] == "turn" and line["interrupted"] else None)
    return call, stt, llm, tts, cut_at


def over_the_story(tmp_path, question: np.ndarray, caller: np.ndarray, texts: list[str], **overrides):
    """The caller asks, and 3 s into the STORY reply says `caller`."""
    call, stt, llm, tts, cut_at = story_rig(tmp_path, texts, **overrides)
    call.play([UntilBotDone(), Say(question), Wait(3.0), Say(caller), Wait(15.0), HangUp()], max_s=90)
    return call, stt, llm, tts, cut_at


def story_sent_whole(call, tts) -> bool:
    """Every sample of every sentence of the reply was sent, none skipped (the tone crosses zero every 200)."""
    sent = np.concatenate([frame for at, frame in call.line.sent if at > call.said[0][1]])
    expected = sum(round(len(text) * tts.s_per_char * PIPELINE_RATE) for text, _ in tts.texts[1:])
    return abs(np.flatnonzero(sent)[-1] + 1 - expected) < 200


def test_phrases_are_compared_without_case_or_punctuation_but_with_accents():
    assert normalise("Uh-huh.") == ("uh", "huh")
    assert normalise("Tá bom!") == ("tá", "bom")
    assert normalise("Hmmm...") == normalise("hmm") == ("hm",)
    assert normalise("Ta\u0301") == normalise("Tá")  # decomposed and composed accents are one word
    backchannels = Backchannels(["uh-huh", "tá bom", "yeah", "got it"])
    assert backchannels.only_backchannels("Uh huh")
    assert backchannels.only_backchannels("Yeah, yeah. Got it!")
    assert not backchannels.only_backchannels("Yeah, but")
    assert not backchannels.only_backchannels("ta bom")  # accents count: "ta" is not "tá"
    assert not backchannels.only_backchannels("")
    assert not Backchannels([]).enabled and not Backchannels([]).only_backchannels("yeah")


def test_a_transcript_made_of_the_bots_last_words_repeats_it():
    said = "We are open from nine in the morning"
    assert repeats_the_bot("We are.", said) and repeats_the_bot("morning", said)
    assert repeats_the_bot("open from 9 in the morning", said)  # Whisper's "9": 5 of 6 words
    assert repeats_the_bot("We are up.", said)  # misheard: 2 of 3
    assert not repeats_the_bot("No", said) and not repeats_the_bot("We were closed?", said)
    assert not repeats_the_bot("", said) and not repeats_the_bot("morning", "")


def test_the_bots_own_words_coming_back_are_its_echo_and_not_answered(tmp_path, utterance, ack):
    """A line the canceller took for a clean one brings the bot back (a speakerphone turned on): its words."""
    call, stt, llm, tts, cut_at = over_the_story(tmp_path, utterance, ack, ["Da tarde. Terceiro, aos sábados"])

    assert cut_at == [] and len(llm.requests) == 1
    assert story_sent_whole(call, tts)
    lines = records(tmp_path)
    assert {"event": "own_echo", "text": "Da tarde. Terceiro, aos sábados"}.items() <= next(
        line for line in lines if line["event"] == "own_echo").items()
    assert call.conversation.record.backchannels == 0


def test_a_phrase_without_a_word_is_refused():
    with pytest.raises(ValidationError, match="need a word"):
        build_settings(backchannels=["yeah", "..."])
    assert build_settings(backchannels="yeah, tá bom").turns.backchannels == ["yeah", "tá bom"]


def test_a_backchannel_resumes_the_reply_where_it_paused_and_is_not_answered(tmp_path, utterance, ack):
    call, stt, llm, tts, cut_at = over_the_story(tmp_path, utterance, ack, ["Tá bom."])

    assert cut_at == [] and len(llm.requests) == 1
    history = call.conversation.history
    assert history[-2:] == [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": STORY}]
    reply = Call(call, stt)
    assert reply.stalls(1) == 1  # paused once, at the onset, then resumed
    assert reply.missing_s(1) < ack.size / PIPELINE_RATE + 0.6  # while they spoke, the pause, the transcription
    assert story_sent_whole(call, tts)
    lines = records(tmp_path)
    assert {"event": "backchannel", "text": "Tá bom."}.items() <= next(
        line for line in lines if line["event"] == "backchannel").items()
    assert lines[-1]["backchannels"] == 1 and call.conversation.record.backchannels == 1


def test_other_words_cut_the_reply_and_are_answered(tmp_path, utterance, ack):
    call, stt, llm, _, cut_at = over_the_story(tmp_path, utterance, ack, ["Espera."])

    onset = call.said[1][0] + first_sound_s(ack)
    assert len(cut_at) == 1 and len(llm.requests) == 2
    assert cut_at[0] < call.said[1][1]  # decided at the pause, not after the end silence
    history = call.conversation.history
    assert history[2]["content"].endswith(INTERRUPTED)
    assert history[3] == {"role": "user", "content": "Espera."}
    assert Call(call, stt).stop_after(onset) <= 0.3  # paused at the onset
    assert call.conversation.record.backchannels == 0


def test_speech_longer_than_backchannel_max_ms_cuts_the_reply_without_waiting_for_its_words(tmp_path, utterance):
    call, stt, llm, _, cut_at = over_the_story(tmp_path, utterance, utterance, ["tá bom"], backchannel_max_ms=600)

    onset = call.said[1][0] + first_sound_s(utterance)
    assert 0.5 <= cut_at[0] - onset <= 0.7  # turns.backchannel_max_ms (600 here) from the VAD's onset
    assert len(stt.calls) >= 2 and call.conversation.history[2]["content"].endswith(INTERRUPTED)


def test_talking_on_after_a_backchannel_contests_the_reply_again(tmp_path, ack, utterance):
    spoken = ack[:np.flatnonzero(np.abs(ack) > 0.01)[-1] + 1]
    # A pause long enough for "tá bom" to be transcribed (vad.pause_ms + the STT), short of vad.end_silence_ms.
    caller = np.concatenate([spoken, np.zeros(round(0.4 * PIPELINE_RATE), np.float32), utterance])
    texts = ["tá bom", "tá bom, mas eu queria outra coisa"]
    call, stt, llm, _, cut_at = over_the_story(tmp_path, utterance, caller, texts, backchannel_max_ms=3000)

    onset = call.said[1][0] + first_sound_s(caller)
    frames = [(start, end) for start, end, audible in call.line.played() if audible and onset < start < cut_at[0]]
    gaps = [(a[1], b[0]) for a, b in zip(frames, frames[1:]) if b[0] - a[1] > 0.3]
    assert len(gaps) == 1 and gaps[0][0] < onset + 0.2  # paused at the onset, then resumed after "tá bom"...
    assert frames[-1][1] < cut_at[0] - 0.1  # ...paused again when the caller went on, and cut at their next pause
    assert call.conversation.history[3] == {"role": "user", "content": "tá bom, mas eu queria outra coisa"}
    assert call.conversation.record.backchannels == 0


def test_without_backchannels_speech_cuts_the_reply_at_barge_in_min_ms(tmp_path, utterance, ack):
    call, _, llm, _, cut_at = over_the_story(tmp_path, utterance, ack, ["Tá bom."], backchannels=[])

    onset = call.said[1][0] + first_sound_s(ack)
    assert 0.1 <= cut_at[0] - onset <= 0.3  # turns.barge_in_min_ms (200) from the VAD's onset
    assert call.conversation.history[3] == {"role": "user", "content": "Tá bom."}


def test_a_key_pressed_during_a_contest_cuts_the_reply_at_once(tmp_path, utterance, ack):
    call, _, llm, _, cut_at = story_rig(tmp_path, ["Tá bom."])
    call.play([UntilBotDone(), Say(utterance), Wait(3.0), Say(ack[:round(0.45 * PIPELINE_RATE)]), Press("1"),
               Say(ack[round(0.45 * PIPELINE_RATE):]), Wait(8.0), HangUp()], max_s=90)

    assert cut_at[0] <= call.said[2][0] + 0.06  # at the key, the caller still talking
    assert call.conversation.history[3] == {"role": "user", "content": f"{KEYS_PRESSED.format(digits='1')} Tá bom."}


def test_a_sound_dropped_as_noise_during_a_contest_resumes_the_reply(tmp_path, utterance):
    """Past turns.barge_in_min_ms but short of vad.min_speech_ms: a contest, then no turn at all. Without
    backchannels such a sound cut the reply and nothing answered it."""
    call, _, llm, _, cut_at = over_the_story(tmp_path, utterance, cough(320), ["should not be transcribed"],
                                             vad_min_speech_ms=400)

    assert cut_at == [] and len(llm.requests) == 1
    assert call.conversation.history[-1] == {"role": "assistant", "content": STORY}


def test_a_sound_too_short_to_contest_that_becomes_a_turn_is_judged_by_its_words(tmp_path, utterance):
    """turns.barge_in_min_ms above vad.min_speech_ms: output resumed over a 320 ms sound that then became a
    turn; a "hum" is still no reason to cut the reply (test_conversation.py has one that is)."""
    call, _, llm, _, cut_at = over_the_story(tmp_path, utterance, cough(320), ["hum"], barge_in_min_ms=400)

    assert cut_at == [] and len(llm.requests) == 1
    assert call.conversation.history[-1] == {"role": "assistant", "content": STORY}
    assert call.conversation.record.backchannels == 1
