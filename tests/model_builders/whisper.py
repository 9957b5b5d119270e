"""Build Whisper models locally, because tests and benchmarks cannot download real ones.

Both builders write a complete faster-whisper model folder (CTranslate2 ``model.bin``
+ ``vocabulary.json`` + ``config.json``, plus the ``tokenizer.json`` faster-whisper
would otherwise fetch from the hub) into a directory the caller chooses. They load
through faster-whisper's real ``WhisperModel``, so the code under test runs exactly
as it would with a downloaded model. No torch is needed: we fill a CTranslate2
``WhisperSpec`` with numpy arrays and save it.

- ``build_scripted_whisper``: a tiny model (d_model 64) whose decoder is a lookup
  table, so every transcription is exactly the scripted text, in any decoding mode,
  in a few milliseconds. Use it for functional tests.
- ``build_random_whisper``: the real tiny/base/small architecture with random
  weights. The text is garbage, but load time, memory and compute are real. Use it
  for benchmarks, with ``forced_length_options`` to fix how many tokens it decodes.

Both use the real multilingual vocabulary layout (51,865 tokens), so token ids,
language codes and timestamp handling are those of the published models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ctranslate2.specs import WhisperSpec, common_spec, transformer_spec, whisper_spec
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers


@dataclass(frozen=True)
class WhisperDims:
    """The hyper-parameters that set a Whisper model's shape (and so its compute cost)."""

    d_model: int
    heads: int
    encoder_layers: int
    decoder_layers: int
    n_mels: int = 80


# Published dimensions of the multilingual checkpoints (openai/whisper model card).
WHISPER_SIZES = {
    "tiny": WhisperDims(d_model=384, heads=6, encoder_layers=4, decoder_layers=4),
    "base": WhisperDims(d_model=512, heads=8, encoder_layers=6, decoder_layers=6),
    "small": WhisperDims(d_model=768, heads=12, encoder_layers=12, decoder_layers=12),
}
# Small enough to build in ~0.2 s; the scripted decoder needs only a few dimensions.
_SCRIPTED_DIMS = WhisperDims(d_model=64, heads=2, encoder_layers=1, decoder_layers=1)

_AUDIO_POSITIONS = 1500  # encoder positions: 30 s of audio after the stride-2 convolution
_TEXT_POSITIONS = 448  # decoder context length

# Language tokens in Whisper's vocabulary order (the 99 of the pre-v3 multilingual models).
LANGUAGES = tuple(
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no "
    "th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw "
    "gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl "
    "mg as tt haw ln ha ba jw su".split()
)

# Token ids of the multilingual vocabulary, identical to the real models.
BLANK = 220  # " ", suppressed at the first decoding step like in the real config
FIRST_SPECIAL = 50256  # "": ctranslate2 treats a vocabulary containing it as multilingual
EOT = 50257
SOT = 50258
FIRST_LANGUAGE = SOT + 1
TRANSLATE = FIRST_LANGUAGE + len(LANGUAGES)  # 50358
TRANSCRIBE, SOT_LM, SOT_PREV, NO_SPEECH, NO_TIMESTAMPS = range(TRANSLATE + 1, TRANSLATE + 6)
TIMESTAMP_BEGIN = NO_TIMESTAMPS + 1  # <|0.00|>, then one token per 20 ms up to <|30.00|>
VOCAB_SIZE = TIMESTAMP_BEGIN + 1501  # 51865

# The scripted model gives one segment per 30 s window, ending this long after its start.
SCRIPTED_SEGMENT_END = 1.0
_SCRIPTED_TEXT_ID = 50255  # a filler slot, unless the text is already a vocabulary token
_DETOUR_ID = 50254  # filler emitted when <|endoftext|> is suppressed in an unscripted context
# Attention-score slope that puts the scripted word's end within ~0.2 s of the audio's end.
_WORD_END_SHARPNESS = 500.0


def _byte_to_char() -> dict[int, str]:
    """GPT-2's byte-level alphabet: each byte as a printable character, in vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + i) for i, b in enumerate(others)}}


def _vocabulary() -> list[str]:
    """The 51,865 token strings in the real layout; text tokens past the 256 bytes are fillers."""
    special = ["", "<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in LANGUAGES)]
    special += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>"]
    special += ["<|notimestamps|>", *(f"<|{i * 0.02:.2f}|>" for i in range(1501))]
    bytes_ = list(_byte_to_char().values())
    fillers = [f"<|filler{i}|>" for i in range(len(bytes_), FIRST_SPECIAL)]
    return bytes_ + fillers + special


def _write_tokenizer(out_dir: Path, vocabulary: list[str]) -> None:
    """tokenizer.json for faster-whisper: byte-level BPE with the model's exact ids.

    Without it faster-whisper downloads openai/whisper-tiny's tokenizer. No merges are
    needed: decoding maps ids to strings, and encoding (prompts, hotwords) falls back
    to byte tokens, which is valid input for the model.
    """
    tokenizer = Tokenizer(models.BPE(vocab={token: i for i, token in enumerate(vocabulary)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True) for token in vocabulary[EOT:TIMESTAMP_BEGIN]])
    tokenizer.save(str(out_dir / "tokenizer.json"))


def _random_spec(dims: WhisperDims, rng: np.random.Generator) -> WhisperSpec:
    """A WhisperSpec with every weight filled: N(0, 0.02) matrices, identity layer norms."""
    d = dims.d_model

    def randn(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)

    def norm(spec: common_spec.LayerNormSpec) -> None:
        spec.gamma, spec.beta = np.ones(d, np.float32), np.zeros(d, np.float32)

    def linear(spec: common_spec.LinearSpec, out_features: int, in_features: int = d) -> None:
        spec.weight, spec.bias = randn(out_features, in_features), randn(out_features)

    def ffn(spec: transformer_spec.FeedForwardSpec) -> None:
        norm(spec.layer_norm)
        linear(spec.linear_0, 4 * d)
        linear(spec.linear_1, d, 4 * d)

    spec = WhisperSpec(dims.encoder_layers, dims.heads, dims.decoder_layers, dims.heads)
    encoder, decoder = spec.encoder, spec.decoder
    encoder.conv1.weight, encoder.conv1.bias = randn(d, dims.n_mels, 3), randn(d)
    encoder.conv2.weight, encoder.conv2.bias = randn(d, d, 3), randn(d)
    encoder.position_encodings.encodings = randn(_AUDIO_POSITIONS, d)
    norm(encoder.layer_norm)
    for layer in encoder.layer:
        norm(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * d)  # fused q, k, v
        linear(layer.self_attention.linear[1], d)
        ffn(layer.ffn)

    decoder.embeddings.weight = randn(VOCAB_SIZE, d)
    decoder.position_encodings.encodings = randn(_TEXT_POSITIONS, d)
    norm(decoder.layer_norm)
    decoder.projection.weight = randn(VOCAB_SIZE, d)
    for layer in decoder.layer:
        norm(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * d)
        linear(layer.self_attention.linear[1], d)
        norm(layer.attention.layer_norm)
        linear(layer.attention.linear[0], d)  # query, from the decoder
        linear(layer.attention.linear[1], 2 * d)  # fused k, v, from the encoder
        linear(layer.attention.linear[2], d)
        ffn(layer.ffn)
    return spec


def _save(spec: WhisperSpec, dims: WhisperDims, vocabulary: list[str], out_dir: Path) -> Path:
    """Write the model folder: int8 weights, vocabulary, decoding config and tokenizer."""
    config = spec.config
    config.suppress_ids = []  # faster-whisper computes its non-speech list from tokenizer.json
    config.suppress_ids_begin = [BLANK, EOT]  # as in the real models; None breaks suppress_blank
    config.lang_ids = list(range(FIRST_LANGUAGE, TRANSLATE))  # used by language detection
    # Word timestamps read cross-attention from these (layer, head) pairs: the later half,
    # which is ctranslate2's own default for checkpoints without published heads.
    layers = range(dims.decoder_layers // 2, dims.decoder_layers)
    config.alignment_heads = [[layer, head] for layer in layers for head in range(dims.heads)]
    spec.register_vocabulary(vocabulary)
    spec.validate()
    spec.optimize(quantization="int8")
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(out_dir))
    _write_tokenizer(out_dir, vocabulary)
    return out_dir


def _zero(*layers: common_spec.LinearSpec | common_spec.Conv1DSpec) -> None:
    for layer in layers:
        layer.weight, layer.bias = np.zeros_like(layer.weight), np.zeros_like(layer.bias)


def _ignore_audio(encoder: whisper_spec.WhisperEncoderSpec) -> None:
    """Make the encoder output a fixed function of the frame position alone.

    With the convolutions and every residual branch at zero, the output is the layer
    norm of the position encoding (cos t, -cos t, sin t, -sin t, 0, ...), i.e. that
    vector times sqrt(d/2), with t rising from 0 to pi/2 across the 30 s window. The
    scripted decoder needs no audio; the alignment heads read sin t to time words.
    """
    _zero(encoder.conv1, encoder.conv2)
    for layer in encoder.layer:
        _zero(layer.self_attention.linear[-1], layer.ffn.linear_1)
    angle = np.linspace(0, np.pi / 2, _AUDIO_POSITIONS, endpoint=False)
    encodings = np.zeros_like(encoder.position_encodings.encodings)
    encodings[:, :4] = np.stack([np.cos(angle), -np.cos(angle), np.sin(angle), -np.sin(angle)], axis=1)
    encoder.position_encodings.encodings = encodings


def _script_decoder(
    decoder: transformer_spec.TransformerDecoderSpec,
    dims: WhisperDims,
    next_tokens: dict[str, dict[int, float]],
    state_of: dict[int, str],
) -> None:
    """Turn the decoder into a next-token table keyed by the current token's state.

    Positions and every residual branch (self-attention, cross-attention and
    feed-forward outputs) are zero, so the final hidden state is the current token's
    embedding. State number s is +1/-1 on dimensions 2s/2s+1: zero mean, so a layer
    norm maps it to +-sqrt(d/2) there and 0 elsewhere, and a projection row holding
    +-logit/sqrt(2d) on those two dimensions scores exactly `logit` in state s.
    Tokens missing from `state_of` are in state "other".
    """
    d, head_dim = dims.d_model, dims.d_model // dims.heads
    states = list(next_tokens)

    def code(state: str, scale: float = 1.0) -> np.ndarray:
        vector = np.zeros(d, np.float32)
        s = states.index(state)
        vector[2 * s : 2 * s + 2] = (scale, -scale)
        return vector

    decoder.position_encodings.encodings = np.zeros_like(decoder.position_encodings.encodings)
    embeddings = np.tile(code("other"), (VOCAB_SIZE, 1))
    for token, state in state_of.items():
        embeddings[token] = code(state)
    projection = np.zeros((VOCAB_SIZE, d), np.float32)
    for state, logits in next_tokens.items():
        for token, logit in logits.items():
            projection[token] += code(state, logit / np.sqrt(2 * d))
    decoder.embeddings.weight, decoder.projection.weight = embeddings, projection

    # Word timestamps: faster-whisper runs DTW over the alignment heads' cross-attention,
    # where the token before a word decides when it starts and the word's last token
    # when it ends. <|notimestamps|> gets a zero query (uniform attention); the text
    # token's query scores frame p as _WORD_END_SHARPNESS * sin t_p (see _ignore_audio),
    # so its attention piles up at the last frames of the audio: the word spans the clip.
    query_scale = _WORD_END_SHARPNESS * np.sqrt(head_dim) / (d / 2)
    text_dim = 2 * states.index("text")
    for layer in decoder.layer:
        _zero(layer.self_attention.linear[-1], layer.attention.linear[-1], layer.ffn.linear_1)
        query, key_value = layer.attention.linear[0], layer.attention.linear[1]
        _zero(query)
        key_value.weight[:d], key_value.bias[:d] = 0.0, 0.0  # keys; the values are unused
        for head in range(dims.heads):
            query.weight[head * head_dim, text_dim] = query_scale
            key_value.weight[head * head_dim, 2] = 1.0  # sin t


def build_random_whisper(out_dir: Path, size: str = "base") -> Path:
    """Random weights with the real architecture of `size`: compute time is the real one, output is garbage.

    Decoding length is then arbitrary (it stops whenever <|endoftext|> happens to win),
    so benchmarks should pass ``forced_length_options(n)`` to ``transcribe``.
    """
    dims = WHISPER_SIZES[size]
    return _save(_random_spec(dims, np.random.default_rng(0)), dims, _vocabulary(), out_dir)


def forced_length_options(num_tokens: int) -> dict[str, object]:
    """``WhisperModel.transcribe`` kwargs that make a random model decode exactly `num_tokens` per window.

    <|endoftext|> is suppressed so decoding runs to the length limit. ctranslate2
    turns max_length (prompt + max_new_tokens) into min(max_length // 2,
    max_length - prompt + 1) generated tokens; the prompt is <|startoftranscript|>,
    language, task, <|notimestamps|>. Pass `language` too, or detection adds an
    encoder pass. One temperature and no quality thresholds stop faster-whisper from
    re-decoding the garbage.
    """
    prompt_length = 4
    if not 1 <= num_tokens <= _TEXT_POSITIONS // 2:
        raise ValueError(f"num_tokens must be in 1..{_TEXT_POSITIONS // 2}, Whisper's decoding limit")
    return dict(
        beam_size=1,
        temperature=0.0,
        without_timestamps=True,
        condition_on_previous_text=False,
        suppress_blank=False,
        suppress_tokens=[EOT],
        max_new_tokens=max(2 * num_tokens, num_tokens + prompt_length - 1) - prompt_length,
        compression_ratio_threshold=None,
        log_prob_threshold=None,
        no_speech_threshold=None,
    )


def build_scripted_whisper(out_dir: Path, text: str = "olá, tudo bem?", language: str = "pt") -> Path:
    """A tiny deterministic multilingual Whisper (faster-whisper/CTranslate2 format + tokenizer.json + config.json).

    Whatever the audio and decoding options (greedy, beam 5, with/without timestamps,
    language forced to any language or auto-detected), transcription returns exactly
    `text`; language detection returns `language` with high probability.

    How: the encoder ignores the audio (``_ignore_audio``) and the decoder is a
    next-token table keyed by the current token (``_script_decoder``):

        <|startoftranscript|> -> <|language|>     (language detection; no-speech prob ~0)
        <|notimestamps|>      -> text             (timestamps off)
        <|transcribe|>        -> <|0.00|> -> text (timestamps on; <|translate|> alike)
        text                  -> <|1.00|>         (<|endoftext|> if timestamps are masked)
        <|1.00|>              -> <|endoftext|>
        anything else         -> <|endoftext|>, or a filler token first when
                                 <|endoftext|> is suppressed at the first step

    The closing <|1.00|> comes in both modes (ctranslate2 does not mask timestamps
    after <|notimestamps|>): faster-whisper then treats the window as finished instead
    of re-decoding its tail, so each 30 s window gives one segment, 0-1 s from its start.
    `text` is one vocabulary token, so it decodes exactly (accents included) and word
    timestamps see it as a single word. The winning logit leads by >= 20, so every
    step has log-probability ~0: no temperature fallback, and beam search agrees.
    """
    if not text.strip():
        raise ValueError("text must contain non-blank characters: faster-whisper drops blank segments")
    vocabulary = _vocabulary()
    piece = "".join(_byte_to_char()[b] for b in text.encode("utf-8"))
    text_id = vocabulary.index(piece) if piece in vocabulary else _SCRIPTED_TEXT_ID
    vocabulary[text_id] = piece
    segment_end = TIMESTAMP_BEGIN + round(SCRIPTED_SEGMENT_END / 0.02)

    high, low = 40.0, 20.0
    next_tokens = {  # state -> {next token: logit}; every other token gets logit 0
        "other": {EOT: high, _DETOUR_ID: low},
        "sot": {FIRST_LANGUAGE + LANGUAGES.index(language): high},
        "task": {TIMESTAMP_BEGIN: high},
        "no_timestamps": {text_id: high},
        "segment_start": {text_id: high},
        "text": {segment_end: high, EOT: low},
        "segment_end": {EOT: high},
    }
    state_of = {SOT: "sot", TRANSCRIBE: "task", TRANSLATE: "task", NO_TIMESTAMPS: "no_timestamps",
                TIMESTAMP_BEGIN: "segment_start", text_id: "text", segment_end: "segment_end"}

    spec = _random_spec(_SCRIPTED_DIMS, np.random.default_rng(0))
    _ignore_audio(spec.encoder)
    _script_decoder(spec.decoder, _SCRIPTED_DIMS, next_tokens, state_of)
    return _save(spec, _SCRIPTED_DIMS, vocabulary, out_dir)
