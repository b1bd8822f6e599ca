"""Find the audio of one extracted package: loose files and members of archives (zip-format game data, Qt ``.rcc``
bundles, Clonk groups: ``harvest.archives``), listed member by member."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clapkit.harvest.archives import ARCHIVE_SUFFIXES, ArchiveError, kind, members

# what the harvester decodes: libsndfile's formats plus WavPack (decoded with Debian's wvunpack)
AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".flac", ".opus", ".mp3", ".wv", ".aif", ".aiff")
_IGNORED_DIRS = ("usr/share/doc/", "usr/share/man/", "usr/share/lintian/")


@dataclass(frozen=True)
class Candidate:
    """One audio file of a package. ``source_path`` is its path inside the package (``archive.zip!member`` for
    archive members); ``file`` the file on disk (the archive, for members); ``member`` the member name or ``""``."""

    package: str
    source_path: str
    file: str
    member: str = ""
    size: int = 0


@dataclass(frozen=True)
class Skip:
    package: str
    source_path: str
    reason: str


def scan_package(package: str, root: Path) -> Iterator[Candidate | Skip]:
    """Every audio file and archive member under ``root`` in sorted path order (symlinks are skipped: their target
    is harvested under its own path)."""
    for path in sorted(_walk(root)):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(_IGNORED_DIRS):
            continue
        suffix = path.suffix.lower()
        if suffix in AUDIO_SUFFIXES:
            if path.is_symlink():
                yield Skip(package, rel, "symlink (its target is harvested under its own path)")
                continue
            yield Candidate(package, rel, str(path), size=path.stat().st_size)
        elif suffix in ARCHIVE_SUFFIXES and path.is_file() and not path.is_symlink():
            yield from _members(package, rel, path)


def _walk(root: Path) -> Iterator[Path]:
    for directory, _, files in os.walk(root):
        for name in files:
            yield Path(directory) / name


def _members(package: str, rel: str, path: Path) -> Iterator[Candidate | Skip]:
    if kind(path) is None:
        if path.suffix.lower() != ".pak":  # .pak is often a game's own format, not an archive of audio
            yield Skip(package, rel, "archive is not in zip format (not read)")
        return
    try:
        found = members(path)
    except ArchiveError as exc:
        yield Skip(package, rel, f"unreadable archive ({exc})")
        return
    for name, size in found.items():
        if Path(name).suffix.lower() in AUDIO_SUFFIXES:
            yield Candidate(package, f"{rel}!{name}", str(path), name, size)
