"""Every tunable of zapvoice, typed and documented in one place.

Values come, lowest priority first, from the defaults below, a `.env` file, environment
variables named `ZAPVOICE_<FIELD>` (for example `ZAPVOICE_WHISPER_MODEL=small`) and the
command line (`--whisper-model small`; the CLI builds one flag per field from this class).
List fields take comma-separated text in both places.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
DEFAULT_GATEWAY_PORT = 4143  # the port the 4143 protocol is named after


class Settings(BaseSettings):
    """zapvoice's configuration. Field descriptions are the user documentation (README table)."""

    model_config = SettingsConfigDict(env_prefix="ZAPVOICE_", env_file=".env", extra="ignore")

    # --- HTTP service -------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the HTTP service listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP service.")
    token: SecretStr | None = Field(
        None,
        description="Bearer token every /stt, /llm and /tts request must carry "
        "(ZuckZapGo's callProviderToken). Required on a non-loopback host.",
    )
    allow_no_auth: bool = Field(
        False, description="Serve without a token on a non-loopback address (not recommended)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log verbosity.")
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
    api_docs: Literal["auto", "on", "off"] = Field(
        "auto", description="Serve the API docs at /docs, /redoc and /openapi.json. auto: only on a loopback host."
    )

    # --- models on disk -------------------------------------------------------------------
    model_dir: Path = Field(
        Path.home() / ".cache" / "zapvoice",
        description="Where `zapvoice models pull` stores models and where names are looked up.",
    )
    hub_url: str | None = Field(
        None, description="Hugging Face endpoint to fetch models from (a mirror); empty uses huggingface.co."
    )
    auto_download: bool = Field(
        True, description="`zapvoice serve` fetches missing default models on first start."
    )

    # --- speech to text (faster-whisper) ---------------------------------------------------
    whisper_model: str = Field(
        "base", description="Whisper model: a name from models.txt or a local CTranslate2 model folder."
    )
    whisper_compute_type: str = Field("int8", description="CTranslate2 compute type (int8, int8_float32, float32).")
    whisper_cpu_threads: int = Field(
        0, ge=0, description="Threads per transcription; 0 uses every core."
    )
    stt_language: str | None = Field(
        None, description="Default language code (pt, en, ...); empty auto-detects. `?language=` overrides."
    )
    stt_beam_size: int = Field(1, ge=1, le=10, description="Beam size; 1 is greedy, fastest for short utterances.")
    stt_temperature_fallback: bool = Field(
        False, description="Retry at higher temperatures when decoding looks bad (slower, rarely helps on phone audio)."
    )
    stt_max_new_tokens: int = Field(
        128, ge=1, le=440, description="Most tokens decoded per utterance; stops runaway hallucination loops."
    )
    stt_speech_check: Literal["silero", "energy", "off"] = Field(
        "silero",
        description="How /stt decides the audio holds no speech and answers \"\" without Whisper "
        "(which hallucinates \"Obrigado.\" on silence).",
    )
    stt_silence_dbfs: float = Field(
        -50.0, description="Audio whose loudest 30 ms stays below this level is silence."
    )
    stt_vad_threshold: float = Field(0.5, gt=0, lt=1, description="Silero speech probability threshold.")
    stt_max_audio_s: float = Field(60.0, gt=0, description="Longest audio /stt accepts (413 beyond).")
    stt_max_channels: int = Field(8, ge=1, description="Most audio channels /stt accepts (422 beyond).")
    stt_max_decoded_samples: int = Field(
        11_520_000, ge=1,
        description="Most samples (frames × channels, read from the header) an /stt upload may decode to: 60 s of "
        "96 kHz stereo. A small compressed file can hold far more (413 beyond).",
    )
    stt_concurrency: int = Field(1, ge=1, description="Transcriptions run at once.")
    stt_queue: int = Field(8, ge=0, description="Transcriptions allowed to wait; more get 503 + Retry-After.")

    # --- language model (any OpenAI-compatible API) ----------------------------------------
    llm_url: str = Field(
        "http://localhost:11434/v1",
        description="Base URL of an OpenAI-compatible API (Ollama, vLLM, llama.cpp server, OpenAI). The agent "
        "also takes a provider's /llm URL (see llm_api).",
    )
    llm_model: str = Field("llama3.2", description="Model name sent to the LLM API.")
    llm_api_key: SecretStr | None = Field(None, description="API key for the LLM API, if it wants one.")
    llm_temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    llm_max_tokens: int = Field(256, ge=1, description="Longest reply in tokens: replies are spoken, keep them short.")
    llm_timeout_s: float = Field(
        30.0, gt=0, description="Longest exchange with the LLM, a whole /llm reply or a streamed one, however "
        "slowly it trickles in; 504 beyond."
    )
    llm_first_token_timeout_s: float = Field(
        10.0, gt=0, description="Agent: longest wait for the first token of a streamed reply (a caller waits in "
        "silence); the error reply is said beyond."
    )
    llm_max_connections: int = Field(
        100, ge=1, description="Connections to the LLM at once; more requests wait for one (within llm_timeout_s)."
    )
    llm_max_reply_bytes: int = Field(
        65536, ge=1024,
        description="Largest answer read from the LLM, decompressed: a whole completion, or one event of a stream "
        "(502 beyond). Spoken replies are short; this stops decompression bombs and runaway answers.",
    )
    llm_spoken_style: bool = Field(
        True, description="Strip markdown, emoji, URLs and <think> blocks so the reply can be spoken."
    )
    llm_max_messages: int = Field(200, ge=1, description="Most messages accepted in one /llm request.")
    llm_max_chars: int = Field(
        50_000, ge=1, description="Most characters (system + all messages) accepted in one /llm request."
    )

    # --- text to speech (Piper) -----------------------------------------------------------
    voices: CommaList = Field(
        ["pt_BR-faber-medium", "en_US-lessac-medium"],
        description="Piper voices to load: names from models.txt or paths to .onnx files. The first is the default.",
        json_schema_extra={"cli_aliases": ["--voice"]},
    )
    tts_sample_rate: int = Field(
        16000, ge=0, description="Rate of /tts audio; 16000 is what ZuckZapGo plays. 0 keeps the voice's own rate."
    )
    tts_volume: float = Field(
        0.8, gt=0, le=1,
        description="Peak level of speech. Piper scales every sentence to full scale; headroom keeps resampling "
        "and the line codec from clipping.",
    )
    tts_max_chars: int = Field(2000, ge=1, description="Longest text /tts accepts (422 beyond).")
    tts_cache_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Memory for cached speech (greetings come back instantly). 0 disables."
    )
    tts_concurrency: int = Field(1, ge=1, description="Syntheses run at once.")
    tts_queue: int = Field(16, ge=0, description="Syntheses allowed to wait; more get 503 + Retry-After.")

    # --- turn taking (energy VAD on 20 ms sub-frames) ------------------------------------------
    vad_start_db: float = Field(
        12.0, gt=0, description="Speech starts this many dB above the learned noise floor."
    )
    vad_stop_db: float = Field(
        7.0, gt=0, description="Speech continues while above floor + this many dB (hysteresis: below vad_start_db)."
    )
    vad_min_level_dbfs: float = Field(
        -48.0, description="Nothing quieter than this is speech, however quiet the line is."
    )
    vad_onset_ms: int = Field(60, ge=20, description="Loud sub-frames needed in a row before speech is declared.")
    vad_min_speech_ms: int = Field(
        250, ge=0, description="Shorter bursts (clicks, coughs) are dropped instead of becoming a turn."
    )
    vad_preroll_ms: int = Field(
        400, ge=0, description="Audio kept from before the onset, so the first syllable reaches STT."
    )
    vad_pause_ms: int = Field(
        160, ge=20,
        description="Quiet after speech that counts as a pause (speculative STT starts; also the silent tail "
        "kept in the turn's audio). Shorter than the gaps inside words (stop consonants) is too eager.",
    )
    vad_end_silence_ms: int = Field(
        600, ge=100, description="Silence after speech that ends the caller's turn."
    )
    vad_floor_rise_s: float = Field(
        2.0, gt=0, description="Time constant of the noise floor rising (learned only while the caller is silent)."
    )
    vad_max_utterance_s: float = Field(30.0, gt=0, description="A turn is cut after this long even without a pause.")

    # --- the voice agent: where its engines run ---------------------------------------------
    stt_url: str | None = Field(
        None, description="Agent: a provider's /stt URL (HTTP contract) instead of Whisper in process."
    )
    tts_url: str | None = Field(
        None, description="Agent: a provider's /tts URL (HTTP contract) instead of Piper in process."
    )
    llm_api: Literal["auto", "openai", "contract"] = Field(
        "auto",
        description="What --llm-url is: an OpenAI-compatible base URL (streams token by token) or a provider's "
        "/llm URL (HTTP contract, whole replies). auto: contract when the URL ends in /llm.",
    )
    provider_token: SecretStr | None = Field(
        None, description="Agent: bearer token sent to the --stt-url, --tts-url and contract --llm-url providers."
    )
    provider_timeout_s: float = Field(30.0, gt=0, description="Agent: timeout of one request to a remote provider.")

    # --- the voice agent: the conversation ------------------------------------------------------
    agent_system_prompt: str = Field(
        "You are the friendly phone assistant of a small business. You are talking on a phone call: "
        "answer in the caller's language (Portuguese or English) in one or two short, natural sentences, "
        "with no lists, markdown or emoji. When the caller says goodbye or has nothing more to ask, say a "
        "short goodbye and call the end_call function. Caller: {caller}.",
        description="System prompt of the agent. {caller}, {called}, {call_id} and {direction} are filled in "
        "(and {session_id} on gateway calls).",
    )
    agent_greeting: str = Field(
        "Olá! Como posso ajudar?", description="Said when a call connects (synthesized once, then cached)."
    )
    agent_idle_prompt: str = Field("Você ainda está aí?", description="Said once when the caller stays silent.")
    agent_idle_prompt_s: float = Field(
        8.0, gt=0, description="Silence after the bot's last word before the idle prompt."
    )
    agent_idle_hangup_s: float = Field(
        6.0, gt=0, description="Silence after the idle prompt before the farewell and hangup."
    )
    agent_farewell: str = Field(
        "Obrigado pela ligação. Tchau!", description="Said before zapvoice hangs up on an idle or too long call."
    )
    agent_error_reply: str = Field(
        "Desculpe, não consegui responder agora. Pode repetir?",
        description="Said when transcription or the LLM fails for a turn; the call goes on.",
    )
    agent_goodbye_phrases: CommaList = Field(
        ["tchau", "até logo", "até mais", "goodbye", "bye"],
        description="A reply whose last sentence says one of these ends the call once it has been heard "
        "(for LLMs without tools). Empty disables.",
    )
    agent_end_call_tool: bool = Field(
        True, description="Offer the LLM an end_call tool (OpenAI tools API); dropped if the model refuses tools."
    )
    agent_max_call_s: float = Field(600.0, gt=0, description="Longest call; then the farewell and a hangup.")
    agent_speculative_stt: bool = Field(
        True,
        description="Transcribe as soon as the caller pauses (vad_pause_ms) instead of at the end of the turn; "
        "the result is dropped if they go on talking.",
    )
    barge_in: bool = Field(True, description="The caller can interrupt the bot by talking.")
    barge_in_min_ms: int = Field(
        200, ge=20,
        description="Caller speech needed to interrupt the bot. Output pauses at the onset and resumes if the "
        "sound stops sooner (a cough, a click, the bot's own echo).",
    )
    agent_max_calls: int = Field(20, ge=1, description="Calls handled at once; more are declined.")
    agent_record_dir: Path | None = Field(
        Path("calls"),
        description="Folder of the per-call JSON-lines records (transcript and turn timings). Empty disables.",
    )

    # --- the ZuckZapGo transport (manual mode) ---------------------------------------------
    zuckzapgo_url: str | None = Field(None, description="Base URL of the ZuckZapGo instance (http://host:8080).")
    zuckzapgo_token: SecretStr | None = Field(None, description="The ZuckZapGo instance token (never logged).")
    zuckzapgo_poll_s: float = Field(
        1.0, gt=0, description="Interval of GET /call/status polls (ringing calls and remote hangups)."
    )
    zuckzapgo_webhook_secret: SecretStr | None = Field(
        None,
        description="Enables the v1.call.offer webhook route /zuckzapgo/webhook?secret=...; requests without "
        "this secret get 401.",
    )
    zuckzapgo_lead_frames: int = Field(
        2, ge=1, le=10,
        description="60 ms frames sent ahead of real time. The engine cannot take queued audio back, so this "
        "bounds how late the bot stops when interrupted.",
    )
    zuckzapgo_ring_timeout_s: float = Field(
        60.0, gt=0, description="`zapvoice call` gives up on a callee who has not answered after this long."
    )
    zuckzapgo_retry_max_s: float = Field(
        30.0, gt=0, description="Longest wait between attempts while ZuckZapGo is unreachable."
    )

    # --- the 4143 telephony gateway (WebSocket server, one connection per call) -------------
    gateway_host: str = Field(
        "127.0.0.1",
        description="Address the gateway server listens on; 0.0.0.0 for a gateway on another machine. The "
        "protocol has no authentication: let only the gateway reach it (firewall).",
    )
    gateway_port: int | None = Field(
        None, ge=0, le=65535,
        description=f"Port of the gateway server (0: any free one). `zapvoice gateway` uses {DEFAULT_GATEWAY_PORT} "
        "when empty; `zapvoice serve` runs the gateway beside the HTTP service only when it is set.",
    )
    gateway_sample_rate: int = Field(
        8000, description="Audio rate on the gateway's socket, both ways: 8000 or 16000 Hz.",
        json_schema_extra={"cli_aliases": ["--sample-rate"]},
    )
    gateway_encoding: Literal["pcm16", "mulaw", "alaw"] = Field(
        "pcm16", description="Audio encoding on the gateway's socket: s16le PCM, or G.711 µ-law / A-law.",
        json_schema_extra={"cli_aliases": ["--encoding"]},
    )
    gateway_chunk_ms: int = Field(20, ge=5, le=200, description="Length of each audio message sent to the gateway.")
    gateway_lead_ms: int = Field(
        60, ge=0, le=1000,
        description="How far ahead of real time audio is sent (rounded up to whole chunks, at least one). "
        "The gateway cannot take queued audio back, so this bounds how late the bot stops when interrupted.",
    )
    gateway_certfile: Path | None = Field(
        None, description="TLS certificate (PEM) of the gateway server: wss:// instead of ws://."
    )
    gateway_keyfile: Path | None = Field(
        None, description="Private key (PEM) of gateway_certfile, when the certificate file does not hold it."
    )
    gateway_max_ahead_s: float = Field(
        2.0, gt=0,
        description="How far a call's inbound audio may run ahead of real time; what comes faster is dropped "
        "before it is decoded (logged once per connection), so one connection cannot slow the other calls.",
    )
    gateway_incoming_timeout_s: float = Field(
        10.0, gt=0, description="A connection that sends no incoming_call within this time is closed."
    )
    gateway_dtmf_actions: CommaList = Field(
        [],
        description="Keys that act instead of reaching the conversation: DIGIT=hangup (farewell, then hang up) "
        "or DIGIT=send:DIGITS (press DIGITS towards the gateway, e.g. a PBX transfer code). Example: "
        "0=hangup,9=send:##200.",
    )
    gateway_dtmf_tool: bool = Field(True, description="Offer the LLM a send_dtmf tool to press keys on the line.")
    gateway_dtmf_duration_ms: int = Field(
        200, ge=40, le=1000, description="Length of each DTMF tone the gateway is asked to send (protocol: ≤ 1000)."
    )
    gateway_echo_hangup_s: float = Field(
        12.0, gt=0,
        description="`zapvoice gateway --echo`: hang up this long after the answer (the protocol's example flow: "
        "DTMF 1 at 2 s, echo, hang up at 12 s).",
    )

    @field_validator("gateway_sample_rate")
    @classmethod
    def _check_gateway_rate(cls, rate: int) -> int:
        if rate not in (8000, 16000):
            raise ValueError("the gateway carries 8000 or 16000 Hz audio")
        return rate

    @field_validator("gateway_dtmf_actions")
    @classmethod
    def _check_dtmf_actions(cls, actions: list[str]) -> list[str]:
        for action in actions:
            if not re.fullmatch(r"[0-9*#A-D]=(hangup|send:[0-9*#]+)", action):
                raise ValueError(f"{action!r}: write DIGIT=hangup or DIGIT=send:DIGITS (0-9, *, #)")
        return actions

    @field_validator("voices", "agent_goodbye_phrases", "gateway_dtmf_actions", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("stt_language", "token", "llm_api_key", "hub_url", "stt_url", "tts_url", "provider_token",
                     "agent_record_dir", "zuckzapgo_url", "zuckzapgo_token", "zuckzapgo_webhook_secret",
                     "gateway_port", "gateway_certfile", "gateway_keyfile", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def llm_is_contract(self) -> bool:
        """Whether llm_url is a provider's /llm (HTTP contract) rather than an OpenAI-compatible base."""
        if self.llm_api == "auto":
            return self.llm_url.rstrip("/").endswith("/llm")
        return self.llm_api == "contract"

    @property
    def is_loopback(self) -> bool:
        return self.host in {"127.0.0.1", "localhost", "::1"} or self.host.startswith("127.")
