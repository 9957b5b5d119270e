"""The speech gate before Whisper: what it lets through, and what part of the audio it keeps.

That Silero's low scores on phone audio trim no words is checked on real recordings
(tests/real/test_stt_accuracy.py, the phone-line cases).
"""

import numpy as np
from zapvoice.providers.speech_check import check_speech

from tests.support.speech import noise, speak
from zapvoice.audio import PIPELINE_RATE


def test_the_kept_span_is_trimmed_of_silence_only():
    silence = np.zeros(PIPELINE_RATE, np.float32)
    words = speak("Bom dia, eu queria marcar uma consulta.")
    span = check_speech(np.concatenate([silence, words, silence]), "silero", -50.0, 0.5)
    assert PIPELINE_RATE - 0.3 * PIPELINE_RATE <= span.start <= PIPELINE_RATE - 0.2 * PIPELINE_RATE
    assert span.end - span.start >= words.size


def test_quiet_noise_and_silence_are_not_speech():
    assert check_speech(np.zeros(PIPELINE_RATE, np.float32), "silero", -50.0, 0.5) is None
    assert check_speech(noise(2.0, -60.0), "silero", -50.0, 0.5) is None
    assert check_speech(noise(2.0, -60.0), "off", -50.0, 0.5).end == 2 * PIPELINE_RATE
