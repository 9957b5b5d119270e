"""The 4143 telephony gateway transport: a WebSocket server where each connection is one call."""
