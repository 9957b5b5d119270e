"""The echo canceller (agent/echo.py): its per-call echo detector, the reference timeline it keeps
from what was played, and a conversation on a line that echoes the bot (virtual clock). The real
voice and recordings, and the gateway, are in tests/real/test_turn_taking.py."""

from __future__ import annotations

import numpy as np
import pytest
from zapvoice.agent.echo import BLOCK, EchoCanceller, EchoDetector
from zapvoice.providers.contracts import Engines

from tests.support.call_rig import CallRig, HangUp, Say, UntilBotDone, Wait
from tests.support.clock import VirtualClock
from tests.support.fake_engines import FakeChat, FakeSTT, FakeTTS, ScriptedReply
from tests.support.settings import build_settings
from tests.support.speech import noise, speak
from tests.support.turn_taking import Call
from zapvoice.audio import PIPELINE_RATE, to_int16
from zapvoice.settings import VadSettings

BAND_HZ = (VadSettings().band_low_hz, VadSettings().band_high_hz)  # the VAD's default speech band

@pytest.fixture(scope="module")
def bot() -> np.ndarray:
    """Six seconds of the bot talking (espeak, int16)."""
    speech = speak("Bom dia, aqui é a clínica. Atendemos de segunda a sexta, das oito às seis, e aos sábados "
                   "de manhã.")
    return to_int16(np.tile(speech, 3)[: 6 * PIPELINE_RATE] * 0.5)


def echoed(bot: np.ndarray, loss_db: float, delay_s: float) -> np.ndarray:
    delay = round(delay_s * PIPELINE_RATE)
    echo = np.concatenate([np.zeros(delay), bot[: bot.size - delay] / 32768]) * 10 ** (-loss_db / 20)
    return (echo + noise(bot.size / PIPELINE_RATE, -60.0, seed=3)).astype(np.float32)


def detect(reference: np.ndarray, line: np.ndarray) -> bool | None:
    detector = EchoDetector(BAND_HZ)
    for at in range(0, reference.size - BLOCK + 1, BLOCK):
        detector.add(reference[at:at + BLOCK], to_int16(line[at:at + BLOCK]))
    return detector.echo


@pytest.mark.parametrize("loss_db, delay_s", [(12, 0.02), (18, 0.1), (24, 0.2), (35, 0.1)])
def test_an_echo_is_detected(bot, loss_db, delay_s):
    assert detect(bot, echoed(bot, loss_db, delay_s)) is True


def test_a_line_without_echo_is_detected_as_such(bot):
    assert detect(bot, noise(6.0, -60.0, seed=4)) is False


def test_a_caller_talking_over_the_bot_on_a_clean_line_decides_nothing(bot):
    caller = speak("Eu queria saber se vocês abrem amanhã à tarde, por favor, é urgente.")
    line = noise(6.0, -60.0, seed=4)
    line[: min(caller.size, line.size)] += caller[: line.size] * 0.5
    line[3 * PIPELINE_RATE: 3 * PIPELINE_RATE + min(caller.size, 3 * PIPELINE_RATE)] += caller[: 3 * PIPELINE_RATE]
    assert detect(bot, line) is None


def test_without_the_bot_talking_nothing_is_decided():
    assert detect(np.zeros(6 * PIPELINE_RATE, np.int16), noise(6.0, -60.0, seed=4)) is None


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


def cancel_call(bot: np.ndarray, line: np.ndarray, chunk: int = 960) -> tuple[np.ndarray, EchoCanceller]:
    """Play `bot` (sent 60 ms ahead, as Playout does) while the line brings `line`; what the canceller returns."""
    clock = Clock()
    canceller = EchoCanceller(clock, BAND_HZ)
    out = []
    for at in range(0, line.size - chunk + 1, chunk):
        canceller.played(bot[at:at + chunk], at / PIPELINE_RATE)  # sent ahead: it plays over the next chunk
        clock.t = (at + chunk) / PIPELINE_RATE  # the line's chunk ending now arrives
        out.append(canceller.cancel(line[at:at + chunk]))
    return np.concatenate(out), canceller


def level_dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def test_the_echo_is_removed_from_a_mulaw_line(bot):
    from zapvoice.agent.gateway.codec import decode, encode

    from zapvoice.audio import from_int16

    line = from_int16(decode(encode(to_int16(echoed(bot, 12, 0.08)), "mulaw"), "mulaw"))
    out, canceller = cancel_call(bot, line)
    assert canceller.detector.echo is True
    known = slice(3 * PIPELINE_RATE, out.size)  # the detector judged at 2.3 s
    assert level_dbfs(out[known]) < level_dbfs(line[known]) - 20


def test_on_a_line_without_echo_the_caller_is_passed_on_as_is(bot):
    caller = speak("Eu queria saber se vocês abrem amanhã.")
    line = noise(6.0, -60.0, seed=4)
    line[4 * PIPELINE_RATE: 4 * PIPELINE_RATE + min(caller.size, 2 * PIPELINE_RATE)] += caller[: 2 * PIPELINE_RATE]
    out, canceller = cancel_call(bot, line)
    assert canceller.detector.echo is False
    assert np.array_equal(out[4 * PIPELINE_RATE:], line[4 * PIPELINE_RATE: out.size])


def test_chunks_of_any_size_come_out_in_whole_blocks(bot):
    out, _ = cancel_call(bot, echoed(bot, 18, 0.05), chunk=333)
    assert out.size % BLOCK == 0 and out.size > bot.size - 333 - BLOCK


def echo_rig(tmp_path, **overrides) -> tuple[CallRig, FakeSTT]:
    """A call on the tone voice whose line echoes the bot 12 dB down, 100 ms late."""
    clock = VirtualClock()
    stt = FakeSTT(clock, ["qual é o horário"])
    llm = FakeChat(clock, [ScriptedReply("Abrimos às oito horas e fechamos às seis da tarde, de segunda a sexta.")])
    settings = build_settings(agent_record_dir=tmp_path, agent_greeting="Olá! Aqui é a clínica, como posso ajudar?",
                              **overrides)
    return CallRig(clock, settings, Engines(stt, llm, FakeTTS(clock)), echo=(12, 0.1)), stt


def test_the_greeting_and_a_reply_are_not_cut_by_their_own_echo(tmp_path):
    call, stt = echo_rig(tmp_path)
    call.play([UntilBotDone(), Say(speak("Bom dia, qual é o horário?")), UntilBotDone(), HangUp()], max_s=60)
    assert Call(call, stt).cut_short() == [False, False] and call.conversation.echo.detector.echo is True


def test_without_the_canceller_the_echo_cuts_the_greeting(tmp_path):
    # Backchannels off too: they keep a reply whose contest the VAD drops as noise, which this echo's can be.
    call, stt = echo_rig(tmp_path, echo_cancellation=False, backchannels=[])
    call.play([Wait(5.0), HangUp()], max_s=60)
    assert Call(call, stt).cut_short()[0] is True


def test_until_the_detector_knows_the_line_passes_as_it_is_and_may_be_the_echo_while_the_bot_plays(bot):
    line = echoed(bot, 12, 0.08)
    clock = Clock()
    canceller = EchoCanceller(clock, BAND_HZ)
    canceller.played(bot[:PIPELINE_RATE], 0.0)  # one second of the bot, then it pauses
    clock.t = 1.0
    out = canceller.cancel(line[:PIPELINE_RATE])
    assert canceller.detector.echo is None and canceller.could_be_echo()
    assert np.array_equal(out, line[: out.size])
    clock.t = 1.35
    canceller.cancel(noise(0.35, -60.0, seed=5))
    assert not canceller.could_be_echo()  # 350 ms after the bot stopped: no echo delay it covers (300 ms) reaches its audio


def test_once_a_sound_died_with_the_bot_the_echo_is_held_to_the_lines_level_and_a_caller_is_not(bot):
    line = echoed(bot, 12, 0.08)
    caller = speak("Alô, alô!")[: PIPELINE_RATE // 2]
    line[PIPELINE_RATE: PIPELINE_RATE + caller.size] += caller
    clock = Clock()
    canceller = EchoCanceller(clock, BAND_HZ)
    canceller.suspect()
    out = []
    for at in range(0, 2 * PIPELINE_RATE - 960 + 1, 960):
        canceller.played(bot[at:at + 960], at / PIPELINE_RATE)
        clock.t = (at + 960) / PIPELINE_RATE
        out.append(canceller.cancel(line[at:at + 960]))
    held = np.concatenate(out)
    assert canceller.detector.echo is None  # 2 s: the window is not full yet
    echo_only = slice(round(0.3 * PIPELINE_RATE), round(0.9 * PIPELINE_RATE))
    assert level_dbfs(held[echo_only]) < level_dbfs(line[echo_only]) - 15
    with_caller = slice(PIPELINE_RATE, PIPELINE_RATE + caller.size)
    assert level_dbfs(held[with_caller]) > level_dbfs(line[with_caller]) - 3


def test_caller_audio_that_arrives_in_a_burst_is_placed_after_what_came_before(bot):
    """A client that sends 2 s of speech at once, just after the bot spoke: the chunks follow one another on the
    timeline instead of all claiming the moment they arrived, which lay under the bot's last words and was
    held down to the line's level."""
    clock = Clock()
    canceller = EchoCanceller(clock, BAND_HZ)
    canceller.played(bot[: PIPELINE_RATE], 0.0)
    clock.t = 1.0  # the bot's second has been played; now the caller's audio comes in, all at once
    caller = np.concatenate([speak("Eu queria saber se vocês abrem amanhã."), np.zeros(PIPELINE_RATE, np.float32)])
    out = np.concatenate([canceller.cancel(caller[at:at + 960]) for at in range(0, caller.size, 960)])
    assert level_dbfs(out) > level_dbfs(caller[: out.size]) - 1
