"""clapkit's errors. Every message names the item at fault and says what to do."""

from __future__ import annotations


class ClapkitError(Exception):
    """Base class of every error clapkit raises on purpose."""


class ConfigError(ClapkitError, ValueError):
    """A model, front-end or training config is malformed or inconsistent."""


class AudioError(ClapkitError, ValueError):
    """An audio input cannot be used: unreadable, empty, silent where that matters, or malformed.

    ``source`` names the input (a path, or ``array[i]`` for in-memory input).
    """

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class CheckpointError(ClapkitError):
    """A checkpoint file is missing, of an unknown family, or does not fit the model."""


class TokenizerError(ClapkitError):
    """No tokenizer is available for a text tower, or its files are missing."""
