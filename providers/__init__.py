"""Speech and language engines (Whisper, an OpenAI-compatible LLM, Piper) and the HTTP service exposing them."""
