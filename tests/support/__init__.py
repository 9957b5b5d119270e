"""Helpers the tests share: servers on free ports, fake peers, test audio."""
