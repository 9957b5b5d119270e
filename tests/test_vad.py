"""Turn taking (agent/vad.py) on synthetic phone audio: speech-like syllables, several kinds of
line noise, clicks, noise steps and dropouts, plus real espeak-ng speech over a telephone band.

Times below are seconds of audio; the VAD decides every 20 ms, so "about right" is within 0.1 s.
"""

from __future__ import annotations

import numpy as np
import pytest
from zapvoice.agent.band import SpeechBand
from zapvoice.agent.gateway.codec import decode, encode
from zapvoice.agent.vad import (
    SUBFRAME,
    EnergyVAD,
    NoiseDropped,
    PauseStarted,
    SpeechResumed,
    SpeechStarted,
    TurnEnded,
)

from tests.support.settings import build_settings
from tests.support.speech import speak
from tests.support.turn_taking import line_noise, pops, speech_dbfs
from zapvoice.audio import from_int16, resample, to_int16
from zapvoice.settings import VadSettings

RATE = 16000
TURN = [SpeechStarted, PauseStarted, TurnEnded]  # one utterance that ends after a pause


def settings(**overrides) -> VadSettings:
    """Defaults only: the developer's ZAPVOICE_* variables or .env must not change the tests."""
    return build_settings(**overrides).vad


def scaled(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x * 10 ** (dbfs / 20) / np.sqrt(np.mean(np.square(x)))).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), np.float32)


def shaped_noise(seconds: float, dbfs: float, seed: int = 0, kind: str = "white") -> np.ndarray:
    """Gaussian noise, white, pink (-3 dB/octave from 20 Hz) or telephone band (300-3400 Hz)."""
    n = round(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).normal(size=n))
    hz = np.fft.rfftfreq(n, 1 / RATE)
    if kind == "pink":
        spectrum *= np.where(hz < 20, 0, 1 / np.sqrt(np.maximum(hz, 20)))
    elif kind == "phone":
        spectrum *= (hz >= 300) & (hz <= 3400)
    return scaled(np.fft.irfft(spectrum, n), dbfs)


def hum(seconds: float, dbfs: float, hz: float = 60.0) -> np.ndarray:
    """Mains hum with its third harmonic."""
    t = np.arange(round(seconds * RATE)) / RATE
    return scaled(np.sin(2 * np.pi * hz * t) + 0.3 * np.sin(6 * np.pi * hz * t + 1), dbfs)


def band_dbfs(x: np.ndarray, low_hz: float = 200.0, high_hz: float = 2500.0) -> float:
    """Level of x's part in the VAD's default band (vad.band_low_hz-band_high_hz), from one spectrum of all of x:
    the floor the VAD should learn from noise."""
    spectrum = np.fft.rfft(x.astype(np.float64))
    hz = np.fft.rfftfreq(x.size, 1 / RATE)
    inside = (hz >= low_hz) & (hz <= high_hz)
    return float(10 * np.log10(2 * np.sum(np.square(np.abs(spectrum[inside]))) / x.size ** 2))


def background(seconds: float, kind: str, dbfs: float, seed: int = 0) -> np.ndarray:
    if kind == "hum50":
        return hum(seconds, dbfs, 50.0)
    if kind == "hum60":
        return hum(seconds, dbfs, 60.0)
    if kind == "hum+phone":
        return hum(seconds, dbfs - 3, 60.0) + shaped_noise(seconds, dbfs - 3, seed, "phone")
    return shaped_noise(seconds, dbfs, seed, kind)


def syllables(seconds: float, dbfs: float = -20.0, seed: int = 0, dip_db: float | None = None) -> np.ndarray:
    """Speech-like sound: a voiced harmonic tone (gliding f0 around 150 Hz, harmonics up to
    3.4 kHz falling 6 dB/octave) cut into 4 Hz syllables of varying loudness, each with a
    sharp 10 ms attack and a 40 ms decay. Between syllables the level falls to silence, or
    only `dip_db` below the syllables (connected speech). The last syllable ends exactly at
    `seconds`; `dbfs` is the RMS of the syllables' loud parts."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 150 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k * (k * 150 < 3400) for k in range(1, 24))
    envelope = np.full(n, 0.0 if dip_db is None else 10 ** (-dip_db / 20))
    period = RATE // 4
    for start in range(0, n - period // 2, period):
        last = start + period >= n
        length = n - start if last else int(rng.uniform(0.16, 0.21) * RATE)
        attack, decay = RATE // 100, RATE // 25
        shape = np.ones(length)
        shape[:attack] = np.linspace(0, 1, attack)
        shape[-decay:] = np.linspace(1, 0, decay)
        envelope[start : start + length] = np.maximum(envelope[start : start + length], shape * rng.uniform(0.6, 1.0))
    speech = voice * envelope
    loud = envelope > 0.5 * envelope.max()
    return (speech * 10 ** (dbfs / 20) / np.sqrt(np.mean(np.square(speech[loud])))).astype(np.float32)


def telephone(speech: np.ndarray) -> np.ndarray:
    """What a phone line leaves of wideband speech: 8 kHz sampling, then back to 16 kHz."""
    return resample(resample(speech, RATE, 8000), 8000, RATE)


def run(audio: np.ndarray, chunk: int = 960, vad: EnergyVAD | None = None) -> list:
    """Feed `audio` in `chunk`-sample pieces (960 = WhatsApp's 60 ms) and collect the events."""
    vad = vad or EnergyVAD(settings())
    events = []
    for start in range(0, audio.size, chunk):
        events += vad.process(audio[start : start + chunk])
    return events


def kinds(events: list) -> list[type]:
    return [type(event) for event in events]


def offset_in(stream: np.ndarray, audio: np.ndarray) -> int:
    """Where in the stream an event's audio was cut from (utterances begin on a sub-frame)."""
    starts = [
        start
        for start in range(0, stream.size - audio.size + 1, SUBFRAME)
        if np.array_equal(stream[start : start + audio.size], audio)
    ]
    assert len(starts) == 1, starts
    return starts[0]


def test_clean_speech_is_one_turn_at_the_right_times():
    audio = np.concatenate([silence(1.0), syllables(2.0), silence(1.5)])
    events = run(audio)
    assert kinds(events) == TURN
    started, paused, ended = events
    assert started.at_s == pytest.approx(1.0 + 0.06, abs=0.1)
    assert ended.at_s == pytest.approx(3.0 + 0.6, abs=0.1)
    assert ended.speech_s == pytest.approx(2.0, abs=0.1)
    # pre-roll (400 ms) + speech + a silent tail of ~150 ms, not the whole 600 ms of silence
    assert ended.audio.size / RATE == pytest.approx(0.4 + 2.0 + 0.16, abs=0.06)


@pytest.mark.parametrize("kind", ["white", "pink", "phone", "hum60", "hum+phone"])
@pytest.mark.parametrize("snr_db", [15, 20])
def test_speech_over_noise_is_detected(kind, snr_db):
    noise = background(7.0, kind, -40.0, seed=snr_db)
    speech = syllables(2.5, dbfs=-40.0 + snr_db, seed=3)
    noise[3 * RATE : 3 * RATE + speech.size] += speech
    events = run(noise)
    assert kinds(events) == TURN
    started, paused, ended = events
    assert started.at_s == pytest.approx(3.0 + 0.06, abs=0.1)
    assert paused.at_s == pytest.approx(5.5 + 0.16, abs=0.1)
    assert ended.at_s == pytest.approx(5.5 + 0.6, abs=0.1)
    assert ended.speech_s == pytest.approx(2.5, abs=0.1)


@pytest.mark.parametrize(
    ("kind", "dbfs"),
    [("white", -60), ("white", -35), ("pink", -45), ("pink", -35), ("phone", -40), ("phone", -35),
     ("hum50", -40), ("hum60", -35), ("hum+phone", -40)],
)
def test_ten_seconds_of_noise_alone_is_silence(kind, dbfs):
    vad = EnergyVAD(settings())
    noise = background(10.0, kind, dbfs, seed=7)
    assert run(noise, vad=vad) == []
    if kind.startswith("hum") and kind != "hum+phone":
        assert vad.noise_floor_dbfs < dbfs - 12  # the hum's harmonics lie below the band: little is heard
    else:
        assert vad.noise_floor_dbfs == pytest.approx(band_dbfs(noise), abs=1)


def test_digital_silence_and_lost_packets():
    """Zeros (no audio yet, lost VoIP packets) must not produce NaN or drag the floor down."""
    line = shaped_noise(10.0, -38.0, seed=1, kind="phone")
    for second in range(1, 10):
        line[second * RATE + 100 : second * RATE + 740] = 0  # a 40 ms dropout every second
    vad = EnergyVAD(settings())
    assert run(line, vad=vad) == []
    assert vad.noise_floor_dbfs == pytest.approx(band_dbfs(line), abs=3)
    # A call that starts with zeros has a -100 dBFS floor, so the absolute minimum decides
    # alone: speech works, and line noise louder than it is a false start, dropped as steady.
    vad = EnergyVAD(settings())
    assert kinds(run(np.concatenate([silence(2.0), syllables(1.0), silence(1.0)]), vad=vad)) == TURN
    assert vad.noise_floor_dbfs == -100.0
    assert kinds(run(line, vad=vad)) == [SpeechStarted, NoiseDropped]
    assert vad.noise_floor_dbfs == pytest.approx(band_dbfs(line), abs=3)


@pytest.mark.parametrize(
    ("kind", "quiet_dbfs", "loud_dbfs"),
    [("white", -60, -50), ("white", -60, -38), ("phone", -55, -35), ("pink", -60, -40), ("hum+phone", -65, -40)],
)
def test_a_louder_background_is_learned_without_a_turn(kind, quiet_dbfs, loud_dbfs):
    """Quiet line, then a fan or a noisier line: no turn, the floor follows within three seconds,
    and speech over the new background is still heard."""
    vad = EnergyVAD(settings())
    events = run(background(3.0, kind, quiet_dbfs, seed=1), vad=vad)
    louder = background(3.0, kind, loud_dbfs, seed=2)
    events += run(louder, vad=vad)
    assert vad.noise_floor_dbfs == pytest.approx(band_dbfs(louder), abs=3)
    events += run(background(3.0, kind, loud_dbfs, seed=3), vad=vad)
    # at most a false start, dropped once the sound proves steady (~1 s)
    assert kinds(events) in ([], [SpeechStarted, NoiseDropped])
    speech = background(4.0, kind, loud_dbfs, seed=4)
    speech[RATE : RATE + 2 * RATE] += syllables(2.0, dbfs=loud_dbfs + 15)
    assert kinds(run(speech, vad=vad)) == TURN


def test_a_background_starting_in_a_pause_ends_the_turn_without_swallowing_it():
    """A fan switched on 300 ms into a pause looks like the caller resuming; once it proves
    steady, the turn ends where it began, with all the speech, and the fan becomes the floor."""
    audio = shaped_noise(9.0, -55.0, seed=1)
    audio[RATE : 3 * RATE] += syllables(2.0, -25)
    audio[int(3.3 * RATE) :] += shaped_noise(5.7, -35.0, seed=2, kind="phone")
    vad = EnergyVAD(settings())
    events = run(audio, vad=vad)
    assert kinds(events) == [SpeechStarted, PauseStarted, SpeechResumed, TurnEnded]
    ended = events[3]
    assert 3.3 + 0.8 <= ended.at_s <= 3.3 + 1.1  # about a second of steady sound
    assert ended.speech_s == pytest.approx(2.3, abs=0.15)  # up to the fan: the pause is inside
    start = offset_in(audio, ended.audio)
    assert start < RATE and start + ended.audio.size > 3 * RATE
    assert vad.noise_floor_dbfs == pytest.approx(-35.0, abs=3)


def test_clicks_and_short_bursts_are_not_turns():
    line = shaped_noise(6.0, -55.0, seed=5)
    line[RATE] += 0.9  # a one-sample click
    line[2 * RATE : 2 * RATE + 80] += 0.5 * np.hanning(80)  # a 5 ms click
    line[4 * RATE : 4 * RATE + RATE // 10] += shaped_noise(0.1, -15.0, seed=6)  # a 100 ms bang
    events = run(line)
    assert kinds(events) == [SpeechStarted, NoiseDropped]
    assert events[1].speech_s == pytest.approx(0.1, abs=0.04)


def test_a_short_pause_inside_a_turn_resumes():
    audio = np.concatenate([shaped_noise(1.0, -50.0), syllables(1.2, -22, seed=1), silence(0.3),
                            syllables(1.0, -22, seed=2), silence(1.0)])
    audio[RATE:] += shaped_noise(audio.size / RATE - 1.0, -50.0, seed=9)
    events = run(audio)
    assert kinds(events) == [SpeechStarted, PauseStarted, SpeechResumed, PauseStarted, TurnEnded]
    _, paused, resumed, _, ended = events
    assert paused.at_s == pytest.approx(2.2 + 0.16, abs=0.1)
    assert resumed.at_s == pytest.approx(2.5 + 0.06, abs=0.1)
    assert ended.at_s == pytest.approx(3.5 + 0.6, abs=0.1)
    assert ended.speech_s == pytest.approx(2.5, abs=0.1)
    # speculative STT got the first part only; the turn carries all of it
    assert paused.audio.size / RATE == pytest.approx(0.4 + 1.2 + 0.16, abs=0.06)
    assert ended.audio.size / RATE == pytest.approx(0.4 + 2.5 + 0.16, abs=0.06)


def test_turn_audio_is_the_speculative_audio_when_the_pause_ends_the_turn():
    events = run(np.concatenate([shaped_noise(1.0, -50.0), syllables(1.0), shaped_noise(1.0, -50.0, seed=1)]))
    assert kinds(events) == [SpeechStarted, PauseStarted, TurnEnded]
    assert events[2].audio is events[1].audio
    assert not events[2].audio.flags.writeable


@pytest.mark.parametrize("offset", [0, 160, 318])
def test_pre_roll_reaches_before_the_onset(offset):
    """The first syllable starts `offset` samples into a sub-frame; with 318, the sub-frame
    holding the onset is too quiet to count, the worst case for the pre-roll."""
    onset = 2 * RATE + offset
    audio = shaped_noise(5.0, -45.0, seed=2)
    audio[onset : onset + 2 * RATE] += syllables(2.0, -25)
    events = run(audio)
    assert kinds(events) == TURN
    preroll_s = settings().preroll_ms / 1000
    start = offset_in(audio, events[2].audio)
    assert onset - start >= preroll_s * RATE
    assert onset - start <= (preroll_s + 0.1) * RATE


def test_events_do_not_depend_on_chunking():
    audio = np.concatenate([
        shaped_noise(2.0, -55.0), syllables(1.5, -25, seed=1), silence(0.3), syllables(0.8, -25, seed=2),
        shaped_noise(1.5, -55.0, seed=1), shaped_noise(0.1, -20.0, seed=2), shaped_noise(1.0, -55.0, seed=3),
        shaped_noise(3.0, -35.0, seed=4), syllables(1.0, -20, seed=5), shaped_noise(1.0, -35.0, seed=5),
    ])
    reference = run(audio, chunk=SUBFRAME)
    assert kinds(reference) == [
        SpeechStarted, PauseStarted, SpeechResumed, PauseStarted, TurnEnded,  # speech with a pause
        SpeechStarted, NoiseDropped,  # the 100 ms burst
        SpeechStarted, NoiseDropped,  # the step to a louder background
        *TURN,  # speech over it
    ]
    for chunk in (960, 777, 13, audio.size):
        events = run(audio, chunk=chunk)
        assert events == reference  # times and durations (audio is left out of ==)
        for got, want in zip(events, reference):
            if hasattr(want, "audio"):
                assert np.array_equal(got.audio, want.audio)


def test_the_floor_does_not_learn_from_a_long_utterance():
    """20 s of connected speech (the level never falls more than 12 dB between syllables):
    a floor learning from it would soon stand above the speech and end the turn."""
    audio = shaped_noise(24.0, -45.0, seed=3)
    audio[RATE : 21 * RATE] += syllables(20.0, -25, dip_db=12)
    vad = EnergyVAD(settings())
    events = run(audio, vad=vad)
    assert kinds(events) == TURN
    assert events[2].speech_s == pytest.approx(20.0, abs=0.1)
    assert vad.noise_floor_dbfs == pytest.approx(band_dbfs(shaped_noise(24.0, -45.0, seed=3)), abs=3)


def test_a_turn_is_cut_at_the_maximum_length_and_listening_goes_on():
    audio = np.concatenate([shaped_noise(1.0, -50.0), syllables(7.0, -25, dip_db=12), shaped_noise(1.0, -50.0, seed=1)])
    vad = EnergyVAD(settings(vad_max_utterance_s=3.0))
    events = run(audio, vad=vad)
    assert kinds(events) == [SpeechStarted, TurnEnded, SpeechStarted, TurnEnded, *TURN]
    first, second, last = events[1], events[3], events[6]
    assert first.speech_s == second.speech_s == 3.0
    assert first.at_s == pytest.approx(1.0 + 3.0, abs=0.1)
    assert last.speech_s == pytest.approx(1.0, abs=0.1)
    # the pieces join without a gap or a repeat, so their transcripts can be concatenated
    assert offset_in(audio, second.audio) == offset_in(audio, first.audio) + first.audio.size
    assert offset_in(audio, last.audio) == offset_in(audio, second.audio) + second.audio.size


def test_barge_in_properties_and_reset():
    vad = EnergyVAD(settings())
    vad.process(noise := shaped_noise(2.0, -45.0))
    assert vad.noise_floor_dbfs == pytest.approx(band_dbfs(noise), abs=1)
    assert not vad.in_speech and vad.speech_ms == 0.0
    assert kinds(vad.process(syllables(0.5, -20))) == [SpeechStarted]
    assert vad.in_speech
    assert vad.speech_ms == pytest.approx(500, abs=60)
    floor = vad.noise_floor_dbfs
    vad.reset()  # e.g. the bot's own voice leaked in while it talked
    assert not vad.in_speech and vad.speech_ms == 0.0
    assert vad.noise_floor_dbfs == floor
    assert vad.process(shaped_noise(2.0, -45.0, seed=1)) == []  # the forgotten utterance never ends


def test_real_speech_over_a_noisy_telephone_line():
    first = telephone(speak("Olá, eu queria marcar uma consulta para amanhã de manhã."))
    second = telephone(speak("Pode ser às três horas?"))
    first, second = scaled(first, -24.0), scaled(second, -24.0)  # RMS with pauses: SNR ~20 dB
    audio = background(1.0 + first.size / RATE + 2.0 + second.size / RATE + 1.5, "hum+phone", -45.0, seed=8)
    second_at = RATE + first.size + 2 * RATE
    audio[RATE : RATE + first.size] += first
    audio[second_at : second_at + second.size] += second
    events = [event for event in run(audio) if not isinstance(event, (PauseStarted, SpeechResumed))]
    assert kinds(events) == [SpeechStarted, TurnEnded, SpeechStarted, TurnEnded]  # commas may pause

    def spoken(speech: np.ndarray) -> tuple[float, float]:
        loud = np.flatnonzero(np.abs(speech) > 0.1 * np.abs(speech).max())
        return loud[0] / RATE, loud[-1] / RATE

    for (started, ended), (speech, at) in zip([events[:2], events[2:]], [(first, RATE), (second, second_at)]):
        begin, end = spoken(speech)
        assert started.at_s == pytest.approx(at / RATE + begin + 0.06, abs=0.1)
        assert ended.at_s == pytest.approx(at / RATE + end + 0.6, abs=0.15)
        assert ended.speech_s == pytest.approx(end - begin, abs=0.15)


def test_a_turn_says_when_its_speech_ended_however_it_ended():
    """The decision lags the end of speech by vad_end_silence_ms after a pause, by nothing at the
    length cut and by the steady second when a sound takes over; speech_end_s is the end itself."""
    paused = run(np.concatenate([shaped_noise(1.0, -50.0), syllables(1.0), shaped_noise(1.0, -50.0, seed=1)]))
    assert kinds(paused) == TURN and paused[1].utterance == paused[2].utterance == 1
    assert paused[2].at_s - paused[2].speech_end_s == pytest.approx(settings().end_silence_ms / 1000, abs=0.02)

    audio = np.concatenate([shaped_noise(1.0, -50.0), syllables(7.0, -25, dip_db=12), shaped_noise(1.0, -50.0, seed=1)])
    cut = run(audio, vad=EnergyVAD(settings(vad_max_utterance_s=3.0)))
    assert kinds(cut) == [SpeechStarted, TurnEnded, SpeechStarted, TurnEnded, *TURN]
    assert [event.utterance for event in cut if isinstance(event, TurnEnded)] == [1, 2, 3]
    assert cut[1].speech_end_s == cut[1].at_s and cut[3].speech_end_s == cut[3].at_s

    audio = shaped_noise(9.0, -55.0, seed=1)
    audio[RATE : 3 * RATE] += syllables(2.0, -25)
    audio[int(3.3 * RATE) :] += shaped_noise(5.7, -35.0, seed=2, kind="phone")
    fan = run(audio)[3]
    assert fan.speech_end_s == pytest.approx(3.3, abs=0.15) and fan.at_s - fan.speech_end_s >= 0.8


@pytest.mark.parametrize("dbfs, every_ms", [(-20.0, 25.0), (-30.0, 25.0), (-20.0, 40.0)])
def test_crackle_is_not_speech(dbfs, every_ms):
    line = np.concatenate([shaped_noise(1.0, -60.0), pops(5.0, dbfs, every_ms=every_ms), shaped_noise(1.0, -60.0)])
    assert run(line) == []


def test_without_the_pop_test_crackle_would_be_a_turn(monkeypatch):
    monkeypatch.setattr("zapvoice.agent.vad.IMPULSE_SHARE", 2.0)  # no sub-frame is impulsive
    line = np.concatenate([shaped_noise(1.0, -60.0), pops(5.0, -20.0), shaped_noise(1.0, -60.0)])
    assert TurnEnded in kinds(run(line))


def test_speech_with_crackle_on_it_keeps_its_onset_and_its_end():
    speech = scaled(speak("Bom dia, eu queria marcar uma consulta."), -24.0)
    clean = np.concatenate([shaped_noise(1.0, -60.0), speech, shaped_noise(1.5, -60.0, seed=1)])
    crackly = clean + np.concatenate([np.zeros(RATE, np.float32), pops(speech.size / RATE, -30.0),
                                      np.zeros(round(1.5 * RATE), np.float32)])
    expected, got = run(clean), run(crackly)
    assert kinds(got) == kinds(expected)
    assert [e.at_s for e in got] == pytest.approx([e.at_s for e in expected], abs=0.05)


def spoken(speech: np.ndarray) -> tuple[float, float]:
    """Where `speech` starts and where its last word ends, in seconds (10 % of its peak)."""
    loud = np.flatnonzero(np.abs(speech) > 0.1 * np.abs(speech).max())
    return loud[0] / RATE, loud[-1] / RATE


def on_a_noisy_line(speech: np.ndarray, kind: str, snr_db: float, seed: int = 0) -> np.ndarray:
    """`speech` 2 s into a line carrying steady noise `snr_db` below the speech's active level, 2 s after it."""
    audio = line_noise(kind, 4.0 + speech.size / RATE, speech_dbfs(speech) - snr_db, seed=seed)
    audio[2 * RATE : 2 * RATE + speech.size] += speech
    return audio


@pytest.fixture(scope="module")
def sentence() -> np.ndarray:
    return scaled(speak("I would like to book a table for two people tomorrow evening, near the window.", "en-us"), -24)


@pytest.mark.parametrize(("kind", "snr_db", "line"), [
    ("hum50", 10, "wideband"), ("hum60", 10, "wideband"), ("hum50", 5, "wideband"), ("hum60", 5, "mulaw"),
    ("white", 10, "wideband"), ("white", 10, "mulaw"), ("pink", 10, "wideband"), ("pink", 10, "mulaw"), ("hum50", 0, "wideband"),
])
def test_a_sentence_in_loud_line_noise_is_one_turn_ending_after_its_last_word(sentence, kind, snr_db, line):
    """Issue 12: at 10 dB SNR a turn was answered mid-sentence. The level in the speech band keeps the quiet
    syllables above hum, hiss and pink noise; an 8 kHz µ-law caller (no sound above 4 kHz) too."""
    speech = sentence if line == "wideband" else from_int16(decode(encode(to_int16(telephone(sentence)), "mulaw"),
                                                                   "mulaw"))
    events = [e for e in run(on_a_noisy_line(speech, kind, snr_db)) if not isinstance(e, (PauseStarted, SpeechResumed))]
    assert kinds(events) == [SpeechStarted, TurnEnded]
    begin, end = spoken(sentence)
    assert events[0].at_s == pytest.approx(2.0 + begin + 0.06, abs=0.1)
    assert events[1].speech_end_s == pytest.approx(2.0 + end, abs=0.15)


@pytest.mark.parametrize(("kind", "snr_db"), [("hum50", 5), ("hum60", 5), ("white", 7)])
def test_measured_over_the_whole_band_the_same_noise_breaks_the_turn(sentence, kind, snr_db):
    """What the band buys: the same audio is one turn in the band, and over 0-8 kHz the turn is cut before the
    last word or never heard."""
    audio = on_a_noisy_line(sentence, kind, snr_db)
    _, end = spoken(sentence)

    def whole_turn(events: list) -> bool:
        turns = [e for e in events if not isinstance(e, (PauseStarted, SpeechResumed))]
        return kinds(turns) == [SpeechStarted, TurnEnded] and turns[1].speech_end_s > 2.0 + end - 0.15

    assert whole_turn(run(audio))
    assert not whole_turn(run(audio, vad=EnergyVAD(settings(vad_band_low_hz=0.0, vad_band_high_hz=8000.0))))


def test_the_speech_band_level():
    band = SpeechBand(SUBFRAME, 200.0, 2500.0)
    t = np.arange(4 * SUBFRAME).reshape(4, SUBFRAME) / RATE
    assert band.power(np.sin(2 * np.pi * 1000 * t)) == pytest.approx(np.full(4, 0.5), rel=0.01)  # all of it
    assert np.all(band.power(np.sin(2 * np.pi * 50 * t + 1)) < 0.5e-4)  # 40 dB down: below the band
    assert np.all(band.power(np.sin(2 * np.pi * 3800 * t)) < 0.5e-4)  # above it
    white = np.random.default_rng(0).normal(size=(500, SUBFRAME))
    assert np.mean(band.power(white)) == pytest.approx(2300 / 8000, rel=0.05)  # its share of white noise
    # Samples left out (a pop) do not count, the rest are measured as the whole frame.
    tone = np.sin(2 * np.pi * 1000 * t)
    popped, kept = tone.copy(), np.ones_like(tone)
    popped[:, :120] += 30.0 * np.random.default_rng(1).normal(size=(4, 120))
    kept[:, :120] = 0.0
    assert np.all(band.power(popped) > 10.0)
    assert band.power(popped, kept) == pytest.approx(np.full(4, 0.5), rel=0.1)


@pytest.mark.parametrize(("low", "high"), [(2500.0, 2450.0), (1000.0, 1050.0), (0.0, 8001.0), (-1.0, 2500.0)])
def test_the_band_must_be_a_band_of_a_16_khz_line(low, high):
    with pytest.raises(ValueError, match="band"):
        settings(vad_band_low_hz=low, vad_band_high_hz=high)


def test_a_quieter_word_after_a_pause_continues_the_turn():
    """A pause is resumed at the floor + vad.resume_db, below vad.start_db: the caller's next word after a
    hesitation may be quieter than an onset must be. Resuming only at vad.start_db ended the turn there."""
    line_dbfs = band_dbfs(shaped_noise(5.0, -40.0, seed=1))
    quiet = syllables(0.75, seed=3)
    quiet *= 10 ** ((line_dbfs + 2.0 - band_dbfs(quiet)) / 20)  # its syllables peak a few dB above the line
    audio = np.concatenate([shaped_noise(1.0, -40.0), syllables(1.0, -15, seed=1), shaped_noise(0.4, -40.0, seed=2),
                            quiet, shaped_noise(1.5, -40.0, seed=4)]).astype(np.float32)
    events = run(audio)
    assert kinds(events) == [SpeechStarted, PauseStarted, SpeechResumed, PauseStarted, TurnEnded]
    assert events[-1].speech_end_s == pytest.approx(1.0 + 1.0 + 0.4 + 0.75, abs=0.1)
    at_onset = run(audio, vad=EnergyVAD(settings(vad_resume_db=settings().start_db)))
    assert kinds(at_onset)[:3] == TURN and at_onset[2].speech_end_s == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("resume_db", [3.0, 2.0, 9.5])
def test_a_pause_resumes_between_the_stay_and_the_start_thresholds(resume_db):
    with pytest.raises(ValueError, match="resume_db"):
        settings(vad_resume_db=resume_db)
