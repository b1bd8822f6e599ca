"""Crash-safe file writing and directory locks, shared by checkpoints, the embedding store and the sound index."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from clapkit.errors import ClapkitError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; single-writer use only
    fcntl = None


def temporary_beside(path: str | Path) -> Path:
    """A new empty temporary file in ``path``'s folder (created if needed), for :func:`commit` to rename later."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(name)


def commit(tmp: str | Path, path: str | Path) -> None:
    """fsync ``tmp`` and rename it over ``path`` (with the usual permissions): ``path`` is the old or the new file,
    never half of one."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    os.replace(tmp, path)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)``, fsync, then rename over ``path``: a crash never leaves a half-written ``path``."""
    tmp = temporary_beside(path)
    try:
        write(tmp)
        commit(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open`` for writing, atomically: the file is written under a temporary name and renamed over ``path`` (after
    an fsync) only when the ``with`` block ends without an exception."""
    tmp = temporary_beside(path)
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
        commit(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)


@contextlib.contextmanager
def locked(directory: Path, exclusive: bool) -> Iterator[None]:
    """Hold an advisory lock on ``directory/.lock`` (exclusive for writers, shared for readers)."""
    try:
        handle = open(Path(directory) / ".lock", "a+") if fcntl is not None else None
    except OSError:  # a read-only directory: nobody can be writing to it
        handle = None
    if handle is None:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_format_file(
    directory: str | os.PathLike[str], name: str, fmt: str, version: int, *, what: str, create: str, redo: str,
    redo_new: str,
) -> dict:
    """Read ``directory/name``, a JSON file that says which ``format`` and ``version`` the folder holds (an embedding
    store's ``store.json``, an index's ``index.json``); each error names the file and says what to do (``create``:
    how to make one, ``redo``: after corruption, ``redo_new``: for another format or version)."""
    path = Path(directory) / name
    if not path.is_file():
        raise ClapkitError(f"{directory}: not {what} (no {name}); {create}")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ClapkitError(f"{path}: corrupt ({exc}); {redo}") from None
    if info.get("format") != fmt or info.get("version") != version:
        raise ClapkitError(
            f"{path}: format {info.get('format')!r} version {info.get('version')!r} is not {fmt!r} version {version}; "
            f"{redo_new}"
        )
    return info
