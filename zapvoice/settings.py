"""Every tunable of zapvoice, typed, grouped in sections and documented in one place.

Each component gets only its section (`OpenAIChat(settings.llm)`, `EnergyVAD(settings.vad)`). Values
come, lowest priority first, from the defaults below, a TOML config file (`[stt]` tables), a `.env`
file, environment variables, `-c section.key=value` and a command's own flags. An environment
variable has two names: nested, `ZAPVOICE_STT__MAX_AUDIO_S`, and the flat one zapvoice has always
read, `ZAPVOICE_STT_MAX_AUDIO_S` (`flat_names()` maps the flat names into the sections). List
settings take comma-separated text.
"""

from __future__ import annotations

import os
import re
import string
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, JsonValue, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

CommaList = Annotated[list[str], NoDecode]
DEFAULT_GATEWAY_PORT = 4143  # the port the 4143 protocol is named after
PROMPT_FIELDS = ("caller", "called", "call_id", "direction", "session_id")


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class Section(BaseModel):
    """One group of settings. A misspelt key is an error, not a silently ignored value."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Flat names are `<flat_prefix><field>` unless a field names its own (json_schema_extra "flat").
    flat_prefix: ClassVar[str] = ""


class ServiceSettings(Section):
    """The HTTP edge: where `serve` (and the agent's health endpoint) listen, and what a request may be."""

    host: str = Field("127.0.0.1", description="Address the HTTP service listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP service.")
    token: SecretStr | None = Field(
        None,
        description="Bearer token every /stt, /llm and /tts request must carry "
        "(ZuckZapGo's callProviderToken). Without one, `serve` uses the token it generated in service.data_dir "
        "on its first start.",
    )
    allow_no_auth: bool = Field(
        False, description="Serve without any token, not even a generated one (logged as a warning on a "
        "non-loopback address)."
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("zapvoice")),
        description="Where zapvoice keeps what it writes: the token `serve` generates when none is given "
        "(`token`, mode 0600) and the call records (a relative agent.record_dir is inside it). The image "
        "uses /var/lib/zapvoice.",
        json_schema_extra={"flat": "data_dir"},
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log verbosity (any case)."
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="Largest request line and headers accepted (431 beyond)."
    )
    header_timeout_s: float = Field(
        10.0, gt=0,
        description="A request's line and headers must arrive within this long of the connection opening (or of "
        "their first byte on a kept-alive connection); 408 and close beyond.",
    )
    body_timeout_s: float = Field(
        30.0, gt=0,
        description="A request's body must arrive within this long of its headers; 408 and close beyond. 30 s "
        "takes max_body_bytes at 4.5 Mbit/s, a 60 s WAV at 0.5 Mbit/s.",
    )
    keep_alive_s: float = Field(5.0, gt=0, description="An idle kept-alive connection is closed after this long.")
    max_connections: int = Field(
        1000, ge=1,
        description="Open connections at most; more get 503 at once (logged). Lowered to fit the open-file limit, "
        "which start-up raises to the hard limit.",
    )
    metrics: Literal["token", "public", "off"] = Field(
        "token", description="Prometheus /metrics: token (the bearer token, when one is set), public (no token "
        "asked), off (no route, and requests are not counted).",
    )
    api_docs: Literal["auto", "on", "off"] = Field(
        "auto", description="Serve the API docs at /docs, /redoc and /openapi.json. auto: only on a loopback host."
    )

    _lower_level = field_validator("log_level", mode="before")(_lower)
    _none = field_validator("token", mode="before")(_empty_is_none)

    @property
    def is_loopback(self) -> bool:
        return self.host in {"127.0.0.1", "localhost", "::1"} or self.host.startswith("127.")


class ModelSettings(Section):
    """Models on disk and where missing ones come from."""

    dir: Path = Field(
        Path.home() / ".cache" / "zapvoice",
        description="Where `zapvoice models pull` stores models and where names are looked up.",
        json_schema_extra={"flat": "model_dir"},
    )
    hub_url: str | None = Field(
        None, description="Hugging Face endpoint to fetch models from (a mirror); empty uses huggingface.co."
    )
    auto_download: bool = Field(
        True, description="`zapvoice serve` fetches missing default models on first start."
    )

    _none = field_validator("hub_url", mode="before")(_empty_is_none)


class STTSettings(Section):
    """Speech to text: faster-whisper in process, or a provider's /stt for the agent."""

    flat_prefix: ClassVar[str] = "stt_"

    whisper_model: str = Field(
        "base", description="Whisper model: a name from models.txt or a local CTranslate2 model folder.",
        json_schema_extra={"flat": "whisper_model"},
    )
    whisper_compute_type: str = Field(
        "int8", description="CTranslate2 compute type (int8, int8_float32, float32).",
        json_schema_extra={"flat": "whisper_compute_type"},
    )
    whisper_cpu_threads: int = Field(
        0, ge=0, description="Threads per transcription; 0 uses every core.",
        json_schema_extra={"flat": "whisper_cpu_threads"},
    )
    language: str | None = Field(
        None, description="Default language code (pt, en, ...); empty auto-detects. `?language=` overrides."
    )
    beam_size: int = Field(1, ge=1, le=10, description="Beam size; 1 is greedy, fastest for short utterances.")
    temperature_fallback: bool = Field(
        False, description="Retry at higher temperatures when decoding looks bad (slower, rarely helps on phone audio)."
    )
    max_new_tokens: int = Field(
        224, ge=1, le=224, description="Most tokens decoded per 30 s window (224, Whisper's own limit, is about "
        "30 s of fast Portuguese speech); bounds the cost of a runaway hallucination loop."
    )
    short_window: bool = Field(
        True, description="Encode only the utterance's own mel frames (plus padding, at least "
        "short_window_min_s) instead of Whisper's padded 30 s window, with a token cap from its duration; a decode "
        "that looks degenerate is redone on the padded window. false: always the padded window.",
    )
    short_window_min_s: float = Field(
        8.0, gt=0, le=30, description="Shortest window the short-window mode encodes; shorter ones made greedy "
        "decoding loop or mishear on the real clips (BENCHMARKS.md, bench_short_window)."
    )
    short_window_pad_s: float = Field(
        1.0, ge=0, le=30, description="Audio after the utterance's end included in the short window."
    )
    short_window_tokens_per_s: float = Field(
        10.0, gt=0, description="Short window: at most 12 + this many tokens are decoded per second of audio, never "
        "above max_new_tokens; a decode that reaches it is redone on the padded window. Fast speech is about 6 "
        "tokens/s in English and 9 in Portuguese (more tokens a word).",
    )
    speech_check: Literal["silero", "energy", "off"] = Field(
        "silero",
        description="How /stt decides the audio holds no speech and answers \"\" without Whisper "
        "(which hallucinates \"Obrigado.\" on silence).",
    )
    silence_dbfs: float = Field(
        -50.0, description="Audio whose loudest 30 ms stays below this level is silence."
    )
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Silero speech probability threshold.")
    max_audio_s: float = Field(60.0, gt=0, description="Longest audio /stt accepts (413 beyond).")
    max_channels: int = Field(8, ge=1, description="Most audio channels /stt accepts (422 beyond).")
    max_decoded_samples: int = Field(
        11_520_000, ge=1,
        description="Most samples (frames × channels, read from the header) an /stt upload may decode to: 60 s of "
        "96 kHz stereo. A small compressed file can hold far more (413 beyond).",
    )
    max_note_s: float = Field(
        900.0, gt=0, description="Longest audio /v1/audio/transcriptions and /translations accept: voice notes and "
        "recordings, decoded in 30 s windows with timestamps (413 beyond).",
    )
    max_note_samples: int = Field(
        86_400_000, ge=1,
        description="Most samples (frames × channels, read from the header) a /v1/audio upload may decode to: "
        "stt.max_note_s of 48 kHz stereo (413 beyond).",
    )
    concurrency: int = Field(1, ge=1, description="Transcriptions (or batches of them) run at once.")
    queue: int = Field(
        20, ge=0, description="Transcriptions allowed to wait; more get 503 + Retry-After. The default lets every "
        "call of agent.max_calls wait its turn: a refused turn costs the caller an error reply and a repeat.",
    )
    max_batch: int = Field(
        4, ge=1, description="Short utterances that waited together are decoded in one Whisper pass, this many at "
        "most (greedy decoding only); 1 decodes each alone.",
    )
    url: str | None = Field(
        None, description="Agent: a provider's /stt URL (HTTP contract) instead of Whisper in process."
    )

    _none = field_validator("language", "url", mode="before")(_empty_is_none)


class LLMSettings(Section):
    """The language model: any OpenAI-compatible API, or a provider's /llm for the agent."""

    flat_prefix: ClassVar[str] = "llm_"

    url: str = Field(
        "http://localhost:11434/v1",
        description="Base URL of an OpenAI-compatible API (Ollama, vLLM, llama.cpp server, OpenAI). The agent "
        "also takes a provider's /llm URL (see llm.api).",
    )
    model: str = Field("llama3.2", description="Model name sent to the LLM API.")
    api_key: SecretStr | None = Field(None, description="API key for the LLM API, if it wants one.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(256, ge=1, description="Longest reply in tokens: replies are spoken, keep them short.")
    timeout_s: float = Field(
        30.0, gt=0, description="Longest exchange with the LLM, a whole /llm reply or a streamed one, however "
        "slowly it trickles in; 504 beyond."
    )
    first_token_timeout_s: float = Field(
        10.0, gt=0, description="Agent: longest wait for the first token of a streamed reply (a caller waits in "
        "silence); the error reply is said beyond."
    )
    max_connections: int = Field(
        100, ge=1, description="Connections to the LLM at once; more requests wait for one (within llm.timeout_s)."
    )
    max_reply_bytes: int = Field(
        65536, ge=1024,
        description="Largest answer read from the LLM, decompressed: a whole completion, or one event of a stream "
        "(502 beyond). Spoken replies are short; this stops decompression bombs and runaway answers.",
    )
    spoken_style: bool = Field(
        True, description="Strip markdown, emoji, URLs and <think> blocks so the reply can be spoken."
    )
    max_messages: int = Field(200, ge=1, description="Most messages accepted in one /llm request.")
    max_chars: int = Field(
        50_000, ge=1, description="Most characters (system + all messages) accepted in one /llm request."
    )
    api: Literal["auto", "openai", "contract"] = Field(
        "auto",
        description="What llm.url is: an OpenAI-compatible base URL (streams token by token) or a provider's "
        "/llm URL (HTTP contract, whole replies). auto: contract when the URL ends in /llm.",
    )

    _none = field_validator("api_key", mode="before")(_empty_is_none)

    @property
    def is_contract(self) -> bool:
        """Whether url is a provider's /llm (HTTP contract) rather than an OpenAI-compatible base."""
        if self.api == "auto":
            return self.url.rstrip("/").endswith("/llm")
        return self.api == "contract"


class TTSSettings(Section):
    """Text to speech: Piper voices in process, or a provider's /tts for the agent."""

    flat_prefix: ClassVar[str] = "tts_"

    voices: CommaList = Field(
        ["pt_BR-faber-medium", "en_US-lessac-medium"],
        description="Piper voices to load: names from models.txt or paths to .onnx files. The first is the default.",
        json_schema_extra={"flat": "voices", "cli_aliases": ["--voice"]},
    )
    sample_rate: int = Field(
        16000, ge=0, description="Rate of /tts audio; 16000 is what ZuckZapGo plays. 0 keeps the voice's own rate."
    )
    volume: float = Field(
        0.8, gt=0, le=1,
        description="Peak level of speech. Piper scales every sentence to full scale; headroom keeps resampling "
        "and the line codec from clipping.",
    )
    noise_scale: float | None = Field(
        None, ge=0, description="Piper's variation of the voice's sound (its noise_scale); unset: the voice's own "
        "(0.667 for most). 0 together with tts.noise_w_scale 0 says a text the same way every time.",
    )
    noise_w_scale: float | None = Field(
        None, ge=0, description="Piper's variation of phoneme lengths (its noise_w); unset: the voice's own.",
    )
    max_chars: int = Field(2000, ge=1, description="Longest text /tts accepts (422 beyond).")
    cache_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Memory for cached speech (greetings come back instantly). 0 disables."
    )
    concurrency: int = Field(1, ge=1, description="Syntheses run at once.")
    queue: int = Field(
        20, ge=0, description="Syntheses allowed to wait; more get 503 + Retry-After. The default lets every call "
        "of agent.max_calls have its next sentence waiting.",
    )
    url: str | None = Field(
        None, description="Agent: a provider's /tts URL (HTTP contract) instead of Piper in process."
    )

    _split = field_validator("voices", mode="before")(_split_commas)
    _none = field_validator("url", mode="before")(_empty_is_none)


class VadSettings(Section):
    """Turn detection: an energy VAD on 20 ms sub-frames."""

    flat_prefix: ClassVar[str] = "vad_"

    start_db: float = Field(
        9.0, gt=0, description="Speech starts this many dB above the learned noise floor (on a quiet line "
        "vad.min_level_dbfs decides instead)."
    )
    stop_db: float = Field(
        3.0, gt=0, description="Speech continues while above floor + this many dB (hysteresis: below vad.start_db). "
        "Low, so that a noisy line's soft syllables do not end the turn mid-sentence.",
    )
    resume_db: float = Field(
        7.0, gt=0, description="After a pause the caller goes on talking once this many dB above the floor "
        "(between vad.stop_db and vad.start_db: a quiet word in a noisy line continues the turn, where a new "
        "one needs vad.start_db)."
    )
    min_level_dbfs: float = Field(
        -48.0, description="Nothing quieter than this is speech, however quiet the line is."
    )
    onset_ms: int = Field(60, ge=20, description="Loud sub-frames needed in a row before speech is declared.")
    min_speech_ms: int = Field(
        250, ge=0, description="Shorter bursts (clicks, coughs) are dropped instead of becoming a turn."
    )
    preroll_ms: int = Field(
        400, ge=0, description="Audio kept from before the onset, so the first syllable reaches STT."
    )
    pause_ms: int = Field(
        160, ge=20,
        description="Quiet after speech that counts as a pause (speculative STT starts; also the silent tail "
        "kept in the turn's audio). Shorter than the gaps inside words (stop consonants) is too eager.",
    )
    end_silence_ms: int = Field(
        600, ge=100, description="Silence after speech that ends the caller's turn."
    )
    floor_rise_s: float = Field(
        2.0, gt=0, description="Time constant of the noise floor rising (learned only while the caller is silent)."
    )
    max_utterance_s: float = Field(30.0, gt=0, description="A turn is cut after this long even without a pause.")
    band_low_hz: float = Field(
        200.0, ge=0, description="Levels (and vad.min_level_dbfs) are measured between vad.band_low_hz and "
        "vad.band_high_hz: below lie mains hum's strongest harmonics and much of pink noise's power."
    )
    band_high_hz: float = Field(
        2500.0, le=8000, description="Top of the measured band: voiced speech's power lies below it, while hiss "
        "spreads its power evenly up to 8 kHz (an \"s\" lies above it too, and counts as silence); inside an "
        "8 kHz phone line's 4 kHz."
    )

    @model_validator(mode="after")
    def _check_hysteresis(self) -> VadSettings:
        if self.stop_db >= self.start_db:
            raise ValueError(f"stop_db ({self.stop_db:g}) must be below start_db ({self.start_db:g}): speech "
                             "that starts above the floor + start_db continues while above the floor + stop_db")
        return self

    @model_validator(mode="after")
    def _check_resume(self) -> VadSettings:
        if not self.stop_db < self.resume_db <= self.start_db:
            raise ValueError(f"resume_db ({self.resume_db:g}) must be above stop_db ({self.stop_db:g}) and at most "
                             f"start_db ({self.start_db:g}): a pause ends when the level falls below the floor + "
                             "stop_db, and a word that would start a turn also continues one")
        return self

    @model_validator(mode="after")
    def _check_band(self) -> VadSettings:
        if self.band_high_hz - self.band_low_hz < 100:
            raise ValueError(f"band_low_hz ({self.band_low_hz:g}) must be at least 100 Hz below band_high_hz "
                             f"({self.band_high_hz:g}): a 20 ms sub-frame's spectrum has a bin every 50 Hz")
        return self


class TurnSettings(Section):
    """Who talks when: interrupting the bot, and transcribing before the turn is over."""

    barge_in: bool = Field(True, description="The caller can interrupt the bot by talking.")
    barge_in_min_ms: int = Field(
        200, ge=20,
        description="Caller speech needed to interrupt the bot. Output pauses at the onset and resumes if the "
        "sound stops sooner (a cough, a click).",
    )
    resume_quiet_ms: int = Field(
        140, ge=20,
        description="Quiet after a sound too short to interrupt (turns.barge_in_min_ms) before paused output "
        "resumes where it stopped; the sound's utterance stays open, so speech that goes on pauses it again. "
        "Longer than the gaps inside words in the speech band (100 ms resumed the bot inside a caller's word).",
    )
    backchannels: CommaList = Field(
        ["uh-huh", "mm-hmm", "mhm", "mm", "hmm", "ah", "aha", "oh", "yeah", "yes", "yep", "okay", "ok",
         "right", "alright", "i see", "got it", "sure", "aham", "uhum", "hum", "sim", "tá", "tá bom", "tá certo",
         "certo", "entendi", "entendo", "beleza", "isso", "claro", "pois é"],
        description="What the caller may say over the bot without interrupting it (\"uh-huh\", \"tá\"): when "
        "the transcript of speech over a reply is made only of these (case and punctuation ignored, accents "
        "not; a letter repeated counts once: hmmm is hmm), the paused reply resumes where it stopped and the "
        "words are not answered. Output still pauses at the onset; anything else interrupts. Empty disables: "
        "then turns.barge_in_min_ms of speech interrupts.",
    )
    backchannel_max_ms: int = Field(
        1000, ge=20,
        description="An utterance over the bot that lasts longer than this (from its onset, pauses included) "
        "interrupts at once, without waiting for its words to be a backchannel (turns.backchannels).",
    )
    echo_cancellation: bool = Field(
        True,
        description="Remove the bot's own voice coming back on the caller's line (WebRTC AEC3, on calls where a "
        "per-call detector finds an echo) before turn taking and transcription hear it, so the echo of a "
        "speakerphone or a hybrid does not interrupt the bot.",
    )
    speculative_stt: bool = Field(
        True,
        description="Transcribe as soon as the caller pauses (vad.pause_ms) instead of at the end of the turn; "
        "the result is dropped if they go on talking.",
        json_schema_extra={"flat": "agent_speculative_stt"},
    )
    end_of_turn: Literal["energy", "smart-turn"] = Field(
        "energy",
        description="What ends the caller's turn. energy: vad.end_silence_ms of silence. smart-turn: at each "
        "pause (vad.pause_ms) the Smart Turn model judges whether the turn sounds complete; complete ends it "
        "at once, else it ends at the next pause the model calls complete or after "
        "turns.smart_turn_max_silence_ms (BENCHMARKS.md, eval_end_of_turn).",
    )
    smart_turn_model: str = Field(
        "smart-turn-v3.2",
        description="The end-of-turn model: a name from models.txt (`zapvoice models pull smart-turn-v3.2`) or "
        "a local .onnx file. Loaded only when turns.end_of_turn is smart-turn.",
    )
    smart_turn_threshold: float = Field(
        0.5, gt=0, lt=1, description="The model's probability from which a pause ends the turn."
    )
    smart_turn_max_silence_ms: int = Field(
        2000, ge=100,
        description="In smart-turn mode, silence that ends the turn whatever the model said (replaces "
        "vad.end_silence_ms, which still applies to a pause the model could not judge, e.g. when it is busy).",
    )

    _split = field_validator("backchannels", mode="before")(_split_commas)

    @field_validator("backchannels")
    @classmethod
    def _check_backchannels(cls, phrases: list[str]) -> list[str]:
        wordless = [phrase for phrase in phrases if not re.search(r"\w", phrase)]
        if wordless:
            raise ValueError(f"backchannel phrases need a word (punctuation is ignored): {wordless}")
        return phrases


class AgentSettings(Section):
    """The voice agent: what it says, how long calls last, and the providers its engines may run on."""

    flat_prefix: ClassVar[str] = "agent_"

    system_prompt: str = Field(
        "You are the friendly phone assistant of a small business. You are talking on a phone call: "
        "answer in the caller's language (Portuguese or English) in one or two short, natural sentences, "
        "with no lists, markdown or emoji. When the caller says goodbye or has nothing more to ask, say a "
        "short goodbye and call the end_call function. Caller: {caller}.",
        description="System prompt of the agent. {caller}, {called}, {call_id} and {direction} are filled in "
        "(and {session_id} on gateway calls); write {{ and }} for literal braces.",
    )
    greeting: str = Field(
        "Olá! Como posso ajudar?", description="Said when a call connects (synthesized once, then cached)."
    )
    idle_prompt: str = Field("Você ainda está aí?", description="Said once when the caller stays silent.")
    idle_prompt_s: float = Field(
        8.0, gt=0, description="Silence after the bot's last word before the idle prompt."
    )
    idle_hangup_s: float = Field(
        6.0, gt=0, description="Silence after the idle prompt before the farewell and hangup."
    )
    farewell: str = Field(
        "Obrigado pela ligação. Tchau!", description="Said before zapvoice hangs up on an idle or too long call."
    )
    error_reply: str = Field(
        "Desculpe, não consegui responder agora. Pode repetir?",
        description="Said when transcription or the LLM fails for a turn; the call goes on.",
    )
    goodbye_phrases: CommaList = Field(
        ["tchau", "até logo", "até mais", "goodbye", "bye"],
        description="A reply whose last sentence says one of these ends the call once it has been heard "
        "(for LLMs without tools). Empty disables.",
    )
    end_call_tool: bool = Field(
        True, description="Offer the LLM an end_call tool (OpenAI tools API); dropped if the model refuses tools."
    )
    max_call_s: float = Field(600.0, gt=0, description="Longest call; then the farewell and a hangup.")
    max_calls: int = Field(20, ge=1, description="Calls handled at once by the process, counted over all its "
                           "transports (gateway, ZuckZapGo, playground); more are declined.")
    record_dir: Path | None = Field(
        Path("calls"),
        description="Folder of the per-call JSON-lines records (transcript and turn timings); a relative path "
        "is inside service.data_dir. Empty disables.",
    )
    provider_token: SecretStr | None = Field(
        None, description="Bearer token sent to the stt.url, tts.url and contract llm.url providers.",
        json_schema_extra={"flat": "provider_token"},
    )
    provider_timeout_s: float = Field(
        30.0, gt=0, description="Timeout of one request to a remote provider.",
        json_schema_extra={"flat": "provider_timeout_s"},
    )

    _split = field_validator("goodbye_phrases", mode="before")(_split_commas)
    _none = field_validator("record_dir", "provider_token", mode="before")(_empty_is_none)

    @field_validator("system_prompt")
    @classmethod
    def _check_placeholders(cls, prompt: str) -> str:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None]
        except ValueError as exc:
            raise ValueError(f"{exc}; write {{{{ and }}}} for literal braces") from None
        for name in fields:
            if name not in PROMPT_FIELDS:
                raise ValueError(f"unknown placeholder {{{name}}}: the prompt can use "
                                 f"{', '.join('{' + f + '}' for f in PROMPT_FIELDS)}; write {{{{ and }}}} "
                                 "for literal braces")
        return prompt


class ZuckZapGoSettings(Section):
    """The ZuckZapGo transport (manual mode)."""

    flat_prefix: ClassVar[str] = "zuckzapgo_"

    url: str | None = Field(None, description="Base URL of the ZuckZapGo instance (http://host:8080).")
    token: SecretStr | None = Field(None, description="The ZuckZapGo instance token (never logged).")
    poll_s: float = Field(
        1.0, gt=0, description="Interval of GET /call/status polls (ringing calls and remote hangups)."
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Enables the v1.call.offer webhook route /zuckzapgo/webhook?secret=...; requests without "
        "this secret get 401.",
    )
    lead_frames: int = Field(
        2, ge=1, le=10,
        description="60 ms frames sent ahead of real time. The engine cannot take queued audio back, so this "
        "bounds how late the bot stops when interrupted.",
    )
    ring_timeout_s: float = Field(
        60.0, gt=0, description="`zapvoice call` gives up on a callee who has not answered after this long."
    )
    retry_max_s: float = Field(
        30.0, gt=0, description="Longest wait between attempts while ZuckZapGo is unreachable."
    )

    _none = field_validator("url", "token", "webhook_secret", mode="before")(_empty_is_none)


class GatewaySettings(Section):
    """The 4143 telephony gateway (WebSocket server, one connection per call)."""

    flat_prefix: ClassVar[str] = "gateway_"

    host: str = Field(
        "127.0.0.1",
        description="Address the gateway server listens on; 0.0.0.0 for a gateway on another machine. The "
        "protocol has no authentication: let only the gateway reach it (firewall).",
    )
    port: int | None = Field(
        None, ge=0, le=65535,
        description=f"Port of the gateway server (0: any free one). `zapvoice gateway` uses {DEFAULT_GATEWAY_PORT} "
        "when empty; `zapvoice serve` runs the gateway beside the HTTP service only when it is set.",
    )
    sample_rate: int = Field(
        8000, description="Audio rate on the gateway's socket, both ways: 8000 or 16000 Hz.",
        json_schema_extra={"cli_aliases": ["--sample-rate"]},
    )
    encoding: Literal["pcm16", "mulaw", "alaw"] = Field(
        "pcm16", description="Audio encoding on the gateway's socket: s16le PCM, or G.711 µ-law / A-law.",
        json_schema_extra={"cli_aliases": ["--encoding"]},
    )
    chunk_ms: int = Field(20, ge=5, le=200, description="Length of each audio message sent to the gateway.")
    lead_ms: int = Field(
        60, ge=0, le=1000,
        description="How far ahead of real time audio is sent (rounded up to whole chunks, at least one). "
        "The gateway cannot take queued audio back, so this bounds how late the bot stops when interrupted.",
    )
    certfile: Path | None = Field(
        None, description="TLS certificate (PEM) of the gateway server: wss:// instead of ws://."
    )
    keyfile: Path | None = Field(
        None, description="Private key (PEM) of gateway.certfile, when the certificate file does not hold it."
    )
    max_ahead_s: float = Field(
        2.0, gt=0,
        description="How far a call's inbound audio may run ahead of real time; what comes faster is dropped "
        "before it is decoded (logged once per connection), so one connection cannot slow the other calls.",
    )
    incoming_timeout_s: float = Field(
        10.0, gt=0, description="A connection that sends no incoming_call within this time is closed."
    )
    dtmf_actions: CommaList = Field(
        [],
        description="Keys that act instead of reaching the conversation: DIGIT=hangup (farewell, then hang up) "
        "or DIGIT=send:DIGITS (press DIGITS towards the gateway, e.g. a PBX transfer code). Example: "
        "0=hangup,9=send:##200.",
    )
    dtmf_tool: bool = Field(True, description="Offer the LLM a send_dtmf tool to press keys on the line.")
    dtmf_duration_ms: int = Field(
        200, ge=40, le=1000, description="Length of each DTMF tone the gateway is asked to send (protocol: ≤ 1000)."
    )
    echo_hangup_s: float = Field(
        12.0, gt=0,
        description="`zapvoice gateway --echo`: hang up this long after the answer (the protocol's example flow: "
        "DTMF 1 at 2 s, echo, hang up at 12 s).",
    )

    _split = field_validator("dtmf_actions", mode="before")(_split_commas)
    _none = field_validator("port", "certfile", "keyfile", mode="before")(_empty_is_none)

    @field_validator("sample_rate")
    @classmethod
    def _check_rate(cls, rate: int) -> int:
        if rate not in (8000, 16000):
            raise ValueError("the gateway carries 8000 or 16000 Hz audio")
        return rate

    @field_validator("dtmf_actions")
    @classmethod
    def _check_dtmf_actions(cls, actions: list[str]) -> list[str]:
        for action in actions:
            if not re.fullmatch(r"[0-9*#A-D]=(hangup|send:[0-9*#]+)", action):
                raise ValueError(f"{action!r}: write DIGIT=hangup or DIGIT=send:DIGITS (0-9, *, #)")
        return actions

    @model_validator(mode="after")
    def _check_tls(self) -> GatewaySettings:
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("keyfile is set but certfile is not: the key belongs to a certificate")
        return self


class Settings(BaseSettings):
    """All sections. Field descriptions are the user documentation (README table)."""

    model_config = SettingsConfigDict(env_prefix="ZAPVOICE_", env_nested_delimiter="__", env_file=".env",
                                      extra="ignore", frozen=True)

    service: ServiceSettings = Field(default_factory=ServiceSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    stt: STTSettings = Field(default_factory=STTSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    tts: TTSSettings = Field(default_factory=TTSSettings)
    vad: VadSettings = Field(default_factory=VadSettings)
    turns: TurnSettings = Field(default_factory=TurnSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    zuckzapgo: ZuckZapGoSettings = Field(default_factory=ZuckZapGoSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)

    @model_validator(mode="before")
    @classmethod
    def _known_sections(cls, data: Any) -> Any:
        """`Settings(whisper_model=...)` would otherwise be dropped silently (extra="ignore" is for the
        environment, where other programs' ZAPVOICE_ variables may live)."""
        unknown = set(data) - set(cls.model_fields) if isinstance(data, dict) else set()
        if unknown:
            raise ValueError(f"no section named {', '.join(sorted(unknown))}; nest() maps flat names into sections")
        return data

    @model_validator(mode="after")
    def _records_in_the_data_dir(self) -> Settings:
        """A relative agent.record_dir (the default `calls`) is inside service.data_dir, not wherever the
        command was started; the agent's components only see their own section, so it is resolved here."""
        record_dir = self.agent.record_dir
        if record_dir is not None and not record_dir.expanduser().is_absolute():
            resolved = self.agent.model_copy(update={"record_dir": self.service.data_dir.expanduser() / record_dir})
            object.__setattr__(self, "agent", resolved)  # frozen; this runs once, while the model is built
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, *environment_sources(settings_cls, dotenv_settings)

    @classmethod
    def sections(cls) -> dict[str, type[Section]]:
        return {name: _section_type(name, field) for name, field in cls.model_fields.items()}


def _section_type(name: str, field: FieldInfo) -> type[Section]:
    model = field.annotation
    if not (isinstance(model, type) and issubclass(model, Section)):
        raise TypeError(f"Settings.{name} is not a Section: {model!r}")
    return model


def schema_extra(field: FieldInfo) -> dict[str, JsonValue]:
    """A field's json_schema_extra ("flat", "cli_aliases"); every field here gives a dict, if any."""
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def cli_aliases(field: FieldInfo) -> list[str]:
    """More flags for the field (`--voice` for `--voices`)."""
    aliases = schema_extra(field).get("cli_aliases", [])
    return [alias for alias in aliases if isinstance(alias, str)] if isinstance(aliases, list) else []


def flat_names() -> dict[str, tuple[str, str]]:
    """Every setting's flat name (`stt_max_audio_s`, `barge_in`) and the (section, key) it now lives at."""
    names = {}
    for section, model in Settings.sections().items():
        for key, field in model.model_fields.items():
            flat = schema_extra(field).get("flat")
            names[flat if isinstance(flat, str) else model.flat_prefix + key] = (section, key)
    return names


def nest(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat-named values ({"stt_max_audio_s": 5}) as sections ({"stt": {"max_audio_s": 5}}); unknown names raise."""
    names = flat_names()
    nested: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        if name not in names:
            raise KeyError(f"no setting is named {name!r}")
        section, key = names[name]
        nested.setdefault(section, {})[key] = value
    return nested


class _FlatEnvSource(PydanticBaseSettingsSource):
    """Environment variables under their flat names (ZAPVOICE_STT_MAX_AUDIO_S), as zapvoice read them before
    the sections; `variables` is the environment or a .env file's contents."""

    def __init__(self, settings_cls: type[BaseSettings], variables: dict[str, str | None]):
        super().__init__(settings_cls)
        self._variables = {name.upper(): value for name, value in variables.items() if value is not None}

    def get_field_value(self, field, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads every name at once

    def __call__(self) -> dict[str, Any]:
        found = {name: self._variables[f"ZAPVOICE_{name.upper()}"] for name in flat_names()
                 if f"ZAPVOICE_{name.upper()}" in self._variables}
        return nest(found)


class _SectionsOnly(PydanticBaseSettingsSource):
    """Another source's sections only: a .env file's flat-named lines come back from pydantic-settings as
    extra keys (`stt_language`), which _FlatEnvSource reads properly."""

    def __init__(self, source: PydanticBaseSettingsSource):
        super().__init__(source.settings_cls)
        self._source = source

    def get_field_value(self, field, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ asks the wrapped source

    def __call__(self) -> dict[str, Any]:
        return {key: value for key, value in self._source().items() if key in self.settings_cls.model_fields}


def environment_sources(settings_cls: type[BaseSettings] = Settings, dotenv: DotEnvSettingsSource | None = None
                        ) -> tuple[PydanticBaseSettingsSource, ...]:
    """Highest priority first: nested then flat names in the environment, then the same in `.env`."""
    dotenv = dotenv or DotEnvSettingsSource(settings_cls)
    return (EnvSettingsSource(settings_cls), _FlatEnvSource(settings_cls, dict(os.environ)),
            _SectionsOnly(dotenv), _FlatEnvSource(settings_cls, dict(dotenv.env_vars)))


class ConfigError(ValueError):
    """A config file, `-c` assignment or secret file that cannot be read; the message says which."""


class Loaded(NamedTuple):
    settings: Settings
    origins: dict[str, str]  # "stt.max_audio_s" -> "default", "file", "env", "-c" or "flag"


def load(config_file: Path | None = None, assignments: Sequence[str] = (),
         flags: dict[str, dict[str, Any]] | None = None) -> Loaded:
    """The effective settings and where each came from. Precedence: flags > -c > environment > file > defaults.

    Raises ConfigError for an unreadable file or a bad assignment, pydantic's ValidationError for bad values.
    """
    layers = [("file", read_config_file(config_file) if config_file else {}),
              ("env", _merged(*(source() for source in reversed(environment_sources())))),
              ("-c", _merged(*(parse_assignment(text) for text in assignments))),
              ("flag", flags or {})]
    origins = {f"{section}.{key}": "default"
               for section, model in Settings.sections().items() for key in model.model_fields}
    for name, layer in layers:
        for section, values in layer.items():
            origins.update({f"{section}.{key}": name for key in values})
    # Section name -> its values, as the sections' fields: pydantic validates them, Settings' own
    # keyword arguments (_env_file...) are never among them.
    sections: dict[str, Any] = _merged(*(layer for _, layer in layers))
    return Loaded(Settings(**sections), origins)


def read_config_file(path: Path) -> dict[str, dict[str, Any]]:
    """A TOML file of section tables: `[stt]` then `max_audio_s = 30`."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    sections = Settings.sections()
    for name, value in data.items():
        if name not in sections or not isinstance(value, dict):
            raise ConfigError(f"{path}: {name!r} is not a section; sections are [{'], ['.join(sections)}]")
    return data


def parse_assignment(text: str) -> dict[str, dict[str, str]]:
    """`section.key=value` (the value is text, read as the setting's type) as {section: {key: value}}."""
    name, equals, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    model = Settings.sections().get(section)
    if not equals or not dot or model is None or key not in model.model_fields:
        raise ConfigError(f"-c {text!r}: write SECTION.KEY=VALUE with a setting from `zapvoice config defaults`")
    return {section: {key: value}}


def _merged(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Section dicts merged key by key, later layers winning."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            merged.setdefault(section, {}).update(values)
    return merged
