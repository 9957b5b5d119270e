"""The manual-mode voice agent: turn taking, the conversation loop and its call transports."""
