"""The ZuckZapGo manual-mode transport: REST control, the PCM media socket, and the call supervisor."""
