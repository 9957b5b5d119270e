"""Smart Turn v3 (pipecat-ai/smart-turn-v3, BSD-2): does the caller's turn sound complete?

A Whisper-tiny-sized encoder with a one-logit head, exported to ONNX. It hears only the last
8 s of the turn as a Whisper log-mel spectrogram (80 bins × 800 frames, the audio zero-padded
at the front and normalised to zero mean and unit variance first, as its training did) and
answers with a sigmoid probability. faster-whisper's feature extractor computes that
spectrogram without transformers or torch (it matches pipecat's to 2e-7). Each call costs
45-90 ms on one thread, so it runs in a bounded worker pool off the event loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from faster_whisper.feature_extractor import FeatureExtractor
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors
from zapvoice.providers.workers import BoundedWorker

from zapvoice.audio import PIPELINE_RATE

WINDOW_S = 8
WINDOW = WINDOW_S * PIPELINE_RATE
N_MELS = 80


class SmartTurn:
    def __init__(self, model_file: Path, workers: int = 1, queue: int = 8, threads: int = 1):
        """`workers` calls run at once, each on `threads` threads; beyond `queue` waiting calls
        the worker refuses with a 503 ProviderError (the conversation then ends turns on silence)."""
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(model_file), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except (_ort_errors.InvalidProtobuf, _ort_errors.InvalidGraph, _ort_errors.Fail,
                _ort_errors.NoSuchFile) as exc:  # not OSError or ValueError: name them for _load's message
            raise ValueError(str(exc)) from exc
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if list(inputs) != ["input_features"] or inputs["input_features"][1:] != [N_MELS, 100 * WINDOW_S]:
            raise ValueError(f"{model_file} is not a Smart Turn v3 model (inputs {inputs})")
        self._mel = FeatureExtractor(feature_size=N_MELS, sampling_rate=PIPELINE_RATE, chunk_length=WINDOW_S)
        self.worker = BoundedWorker("turn", workers, queue)

    def warm_up(self) -> None:
        """One call so the first caller does not pay for lazy initialisation."""
        self.probability(np.zeros(PIPELINE_RATE, np.float32))

    async def complete(self, samples: np.ndarray) -> float:
        return await self.worker.run(lambda: self.probability(samples))

    def probability(self, samples: np.ndarray) -> float:
        """Blocking: the probability that `samples` (16 kHz mono float32) end a complete turn."""
        features = self.features(samples)
        (logits,) = self.session.run(["logits"], {"input_features": features[np.newaxis]})
        return float(logits.reshape(-1)[0])

    def features(self, samples: np.ndarray) -> np.ndarray:
        """The model's input: the log-mel of the last 8 s, zero-padded at the front, [80, 800] float32."""
        audio = np.asarray(samples, dtype=np.float32).reshape(-1)[-WINDOW:]
        audio = np.pad(audio, (WINDOW - audio.size, 0))
        audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        return self._mel(audio, padding=0).astype(np.float32)

    def close(self) -> None:
        self.worker.shutdown()
