"""Build Piper voices locally, because tests and benchmarks cannot download real ones.

Both builders write ``<name>.onnx`` plus ``<name>.onnx.json`` into a directory the
caller chooses, and both load through piper-tts's real ``PiperVoice.load()``, so
the code under test runs exactly as it would with a voice from the model hub.

- ``build_sine_voice``: a tiny hand-written ONNX graph (instant, no torch) with
  Piper's exact input/output signature. Each phoneme id becomes a short sine tone,
  so the audio is deterministic, non-silent, proportional to the phoneme count and
  stretched by ``length_scale``. Use it for functional tests.
- ``build_medium_voice``: Piper's real "medium" VITS network with random weights
  (needs ``torch==2.13.0``). The audio is noise, but load time, memory and compute
  are those of a real medium voice. Use it for benchmarks.
"""

import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper
from piper.config import PhonemeType, PiperConfig
from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

# piper.train's default text-encoder vocabulary size. Its symbol table is piper's
# DEFAULT_PHONEME_ID_MAP (ids 0-165), which it writes into every voice config.
NUM_SYMBOLS = 256
# Real Piper voices are exported with this opset (piper/train/export_onnx.py).
OPSET = 15
# The IR version torch's exporter writes for opset 15, as in real voices.
IR_VERSION = 8
# Medium voices are trained at 22.05 kHz.
MEDIUM_SAMPLE_RATE = 22050

# Piper puts a pad id after every phoneme, so a phoneme is two ids: 35 ms per id
# gives ~70 ms per phoneme, a realistic speaking rate (a sentence is 1-3 s).
_SINE_SECONDS_PER_ID = 0.035
_SINE_BASE_HZ = 100.0
_SINE_HZ_PER_ID = 10.0
_SINE_AMPLITUDE = 0.5


def _write_config(onnx_path: Path, espeak_voice: str, sample_rate: int) -> None:
    """Write the ``.onnx.json`` beside the model, in the format piper.train writes."""
    config = PiperConfig(
        num_symbols=NUM_SYMBOLS,
        num_speakers=1,
        sample_rate=sample_rate,
        espeak_voice=espeak_voice,
        phoneme_id_map={phoneme: list(ids) for phoneme, ids in DEFAULT_PHONEME_ID_MAP.items()},
        phoneme_type=PhonemeType.ESPEAK,
    )
    config_path = onnx_path.with_name(onnx_path.name + ".json")
    config_path.write_text(json.dumps(config.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")


def _sine_graph(sample_rate: int) -> onnx.ModelProto:
    """ONNX graph: phoneme ids -> one sine segment per id.

    Segment length is ``round(35 ms * length_scale)`` (``scales[1]``) and frequency is
    ``100 Hz + 10 Hz * id``. Only batch size 1 is supported, which is all Piper feeds.
    """
    samples_per_id = round(_SINE_SECONDS_PER_ID * sample_rate)

    def const(name: str, value: float | int, dtype: int) -> onnx.NodeProto:
        return helper.make_node(
            "Constant", [], [name], value=helper.make_tensor(name, dtype, [], [value])
        )

    nodes = [
        const("zero", 0, TensorProto.INT64),
        const("one", 1, TensorProto.INT64),
        const("one_f", 1.0, TensorProto.FLOAT),
        const("samples_per_id", float(samples_per_id), TensorProto.FLOAT),
        const("base_hz", _SINE_BASE_HZ, TensorProto.FLOAT),
        const("hz_per_id", _SINE_HZ_PER_ID, TensorProto.FLOAT),
        const("radians_per_sample", 2.0 * 3.141592653589793 / sample_rate, TensorProto.FLOAT),
        const("amplitude", _SINE_AMPLITUDE, TensorProto.FLOAT),
        helper.make_node(
            "Constant", [], ["output_shape"],
            value=helper.make_tensor("output_shape", TensorProto.INT64, [4], [1, 1, 1, -1]),
        ),
        # seg_len = max(1, round(samples_per_id * length_scale))
        helper.make_node("Gather", ["scales", "one"], ["length_scale"], axis=0),
        helper.make_node("Mul", ["samples_per_id", "length_scale"], ["seg_len_raw"]),
        helper.make_node("Round", ["seg_len_raw"], ["seg_len_round"]),
        helper.make_node("Max", ["seg_len_round", "one_f"], ["seg_len_f"]),
        helper.make_node("Cast", ["seg_len_f"], ["seg_len"], to=TensorProto.INT64),
        # t = 0 .. num_ids * seg_len - 1; the id sounding at sample t is ids[t // seg_len]
        helper.make_node("Gather", ["input_lengths", "zero"], ["num_ids"], axis=0),
        helper.make_node("Mul", ["num_ids", "seg_len"], ["num_samples"]),
        helper.make_node("Range", ["zero", "num_samples", "one"], ["t"]),
        helper.make_node("Div", ["t", "seg_len"], ["id_index"]),
        helper.make_node("Gather", ["input", "zero"], ["ids"], axis=0),
        helper.make_node("Gather", ["ids", "id_index"], ["id_per_sample"], axis=0),
        # audio = amplitude * sin(2 pi * (base_hz + hz_per_id * id) * t / sample_rate)
        helper.make_node("Cast", ["id_per_sample"], ["id_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["id_f", "hz_per_id"], ["id_hz"]),
        helper.make_node("Add", ["id_hz", "base_hz"], ["hz"]),
        helper.make_node("Cast", ["t"], ["t_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["t_f", "radians_per_sample"], ["phase_per_hz"]),
        helper.make_node("Mul", ["hz", "phase_per_hz"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["wave"]),
        helper.make_node("Mul", ["wave", "amplitude"], ["audio"]),
        helper.make_node("Reshape", ["audio", "output_shape"], ["output"]),
    ]
    # Same names, dynamic axes and output rank as piper/train/export_onnx.py (its
    # extra unsqueeze makes real voices output [1, 1, 1, samples]). No "sid" input:
    # single-speaker voices never get it fed, and onnxruntime rejects a missing input.
    graph = helper.make_graph(
        nodes,
        "piper_sine_voice",
        inputs=[
            helper.make_tensor_value_info("input", TensorProto.INT64, ["batch_size", "phonemes"]),
            helper.make_tensor_value_info("input_lengths", TensorProto.INT64, ["batch_size"]),
            helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
        ],
        outputs=[helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", 1, 1, "time"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def build_sine_voice(
    out_dir: Path,
    name: str = "pt_BR-test-medium",
    espeak_voice: str = "pt-br",
    sample_rate: int = 22050,
) -> Path:
    """A tiny deterministic voice with Piper's exact ONNX signature: returns the .onnx path (the .onnx.json is beside it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    onnx.save(_sine_graph(sample_rate), onnx_path)
    _write_config(onnx_path, espeak_voice, sample_rate)
    return onnx_path


def build_medium_voice(
    out_dir: Path,
    name: str = "pt_BR-random-medium",
    espeak_voice: str = "pt-br",
) -> Path:
    """Random weights, the real medium architecture (needs torch==2.13.0): compute time is the real one, audio is noise.

    Mirrors piper/train/export_onnx.py step by step (seed, eval, weight-norm removal,
    ``infer`` as forward, input names, dynamic axes, opset) so the ONNX graph is the
    one a trained medium voice ships with. Takes a few seconds.
    """
    # torch is heavy and optional: only this builder needs it.
    import torch
    from piper.train.vits.config import ModelAudioConfig, ModelConfig
    from piper.train.vits.models import SynthesizerTrn

    torch.manual_seed(1234)
    # "Medium" is piper.train's default model: VitsModel's defaults equal
    # ModelConfig with the resblock-"2" decoder that config.py calls low_quality().
    config = ModelConfig(num_symbols=NUM_SYMBOLS, n_speakers=1, audio=ModelAudioConfig.low_quality())
    model_g = SynthesizerTrn(
        n_vocab=config.num_symbols,
        spec_channels=config.mel.filter_length // 2 + 1,
        segment_size=config.segment_size // config.mel.hop_length,
        inter_channels=config.inter_channels,
        hidden_channels=config.hidden_channels,
        filter_channels=config.filter_channels,
        n_heads=config.n_heads,
        n_layers=config.n_layers,
        kernel_size=config.kernel_size,
        p_dropout=config.p_dropout,
        resblock=config.resblock,
        resblock_kernel_sizes=config.resblock_kernel_sizes,
        resblock_dilation_sizes=config.resblock_dilation_sizes,
        upsample_rates=config.upsample_rates,
        upsample_initial_channel=config.upsample_initial_channel,
        upsample_kernel_sizes=config.upsample_kernel_sizes,
        n_speakers=config.n_speakers,
        gin_channels=config.gin_channels,
        use_sdp=config.use_sdp,
    )
    model_g.eval()
    with torch.no_grad():
        model_g.dec.remove_weight_norm()

    def infer_forward(text, text_lengths, scales, sid=None):
        return model_g.infer(
            text,
            text_lengths,
            noise_scale=scales[0],
            length_scale=scales[1],
            noise_scale_w=scales[2],
            sid=sid,
        )[0].unsqueeze(1)

    model_g.forward = infer_forward

    sequences = torch.randint(low=0, high=config.num_symbols, size=(1, 50), dtype=torch.long)
    sequence_lengths = torch.LongTensor([sequences.size(1)])
    scales = torch.FloatTensor([0.667, 1.0, 0.8])  # noise, length, noise_w

    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    # dynamo=False: the default dynamo exporter needs onnxscript and traces differently
    # from the TorchScript exporter that real voices were made with.
    torch.onnx.export(
        model=model_g,
        args=(sequences, sequence_lengths, scales, None),
        f=onnx_path,
        verbose=False,
        opset_version=OPSET,
        input_names=["input", "input_lengths", "scales", "sid"],
        output_names=["output"],
        dynamic_axes={
            "input": {0: "batch_size", 1: "phonemes"},
            "input_lengths": {0: "batch_size"},
            "output": {0: "batch_size", 2: "time"},
        },
        dynamo=False,
    )
    _write_config(onnx_path, espeak_voice, MEDIUM_SAMPLE_RATE)
    return onnx_path
