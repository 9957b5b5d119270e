"""Settings for tests, written with the flat names (`vad_end_silence_ms=800`) and validated like a user's."""

from __future__ import annotations

from zapvoice.settings import Settings, nest


def build_settings(**flat) -> Settings:
    """Defaults plus `flat`; the developer's ZAPVOICE_* variables are cleared by conftest, .env is not read."""
    return Settings(_env_file=None, **nest(flat))


def changed(settings: Settings, **flat) -> Settings:
    """`settings` with some values changed, validated again (model_copy would not check them)."""
    values = settings.model_dump()
    for section, updates in nest(flat).items():
        values[section].update(updates)
    return Settings(_env_file=None, **values)
