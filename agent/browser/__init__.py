"""The browser transport: /playground talks to the agent from a web page, /calls shows the call records."""
