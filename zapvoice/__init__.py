"""zapvoice: a self-hosted voice agent for phone calls (shared settings, audio and command line)."""
