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


class ClapkitWarning(UserWarning):
    """Something clapkit can go on with but the user should know (the CLI prints it as ``clapkit: warning: ...``)."""


def os_reason(exc: OSError) -> str:
    """A short, plain reason for an operating-system error on a file (no errno numbers, no Python class names)."""
    import errno

    reasons = {
        errno.EACCES: "permission denied: this user may not read it (check the file's and its folders' permissions)",
        errno.EPERM: "permission denied: this user may not read it (check the file's and its folders' permissions)",
        errno.ELOOP: "symbolic link loop (the link leads back to itself); fix or remove the link",
        errno.ENOENT: "file not found; check the path",
        errno.EISDIR: "is a directory, not a file",
        errno.ENOTDIR: "a part of the path is not a folder; check the path",
        errno.ENAMETOOLONG: "the path is too long",
    }
    return reasons.get(exc.errno, f"cannot read it ({exc.strerror or exc})")
